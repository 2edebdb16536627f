//! `{{name}}`: a Caxton tool written with the `caxton-agent` SDK.
//!
//! Counts the words and characters of a text: input `{"text": "..."}`,
//! output `{"words": N, "characters": N}`. Input that does not match is
//! answered with `invalid-input` before `invoke` runs.

use caxton_agent::{Error, Tool};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    text: String,
}

#[derive(Serialize)]
struct Output {
    words: usize,
    characters: usize,
}

struct WordCount;

impl Tool for WordCount {
    const NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "Counts the words and characters of a text.";
    type Input = Input;
    type Output = Output;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "required": ["text"],
            "additionalProperties": false,
            "properties": { "text": { "type": "string", "description": "The text to count" } }
        })
    }

    fn invoke(input: Input) -> Result<Output, Error> {
        Ok(Output {
            words: input.text.split_whitespace().count(),
            characters: input.text.chars().count(),
        })
    }
}

caxton_agent::export_tool!(WordCount);
