//! `analyst` agent: takes `{"csv": "..."}`, runs it through the `csv_parser`
//! tool and replies with the tool's summary. Shows an agent calling a tool.

use caxton_agent::{Agent, Error, Message, tools};
use serde::Deserialize;

#[derive(Deserialize)]
struct Request {
    csv: String,
}

struct Analyst;

impl Agent for Analyst {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        let request: Request = message.json()?;
        caxton_agent::info!("analysing {} bytes of CSV", request.csv.len());
        let input = serde_json::json!({ "csv": request.csv }).to_string();
        let output = tools::call("csv_parser", &input)?;
        Ok(Some(message.reply(output)))
    }
}

caxton_agent::export_agent!(Analyst);
