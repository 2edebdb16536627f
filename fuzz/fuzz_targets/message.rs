//! Any bytes as a message body: decoding refuses or accepts, never panics,
//! and an accepted message survives the WIT form and back.
#![no_main]

use caxton::messaging::MessageJson;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<MessageJson>(data) else {
        return;
    };
    let content = json.content.clone();
    let wit = json.into_message();
    let back = MessageJson::from_reply(wit, "fuzz");
    assert_eq!(back.content, content);
});
