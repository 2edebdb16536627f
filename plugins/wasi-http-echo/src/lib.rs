//! The plain-wasmtime baseline of the message-path benchmark: what
//! `wasmtime serve` does with the least possible component, answering each
//! request with its own body (as Caxton's echo agent answers a message with
//! its content). Built with the other plugins; only `wasmtime serve` runs it.

use std::io::{Read as _, Write as _};

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Echo);

struct Echo;

impl wasip2::exports::http::incoming_handler::Guest for Echo {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let body = read_body(&request);
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"application/json".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let outgoing = response.body().expect("a new response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        {
            let mut out = outgoing.write().expect("the body's stream, once");
            // blocking_write_and_flush takes at most 4 KiB at a time.
            for chunk in body.chunks(4096) {
                if out.write_all(chunk).is_err() {
                    return;
                }
            }
            let _ = out.flush();
        }
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut body = Vec::new();
    let Ok(incoming) = request.consume() else {
        return body;
    };
    if let Ok(mut stream) = incoming.stream() {
        let _ = stream.read_to_end(&mut body);
    }
    IncomingBody::finish(incoming);
    body
}
