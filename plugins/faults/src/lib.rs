//! Test-only agent that misbehaves on request, to prove the host survives
//! runaway plugins. Content `{"fault": "<kind>"}` selects the fault:
//! `loop` (never returns), `alloc` (allocates without bound), `panic`,
//! `recurse` (overflows the stack). Anything else is answered normally.

wit_bindgen::generate!({ world: "agent", path: "../../wit" });

use std::hint::black_box;

use caxton::agent::types::Performative;

struct Faults;

fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn allocate_without_bound() -> usize {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really used, not just reserved.
        hoard.push(vec![0xA5; 1 << 20]);
        black_box(&hoard);
    }
}

/// Recursion whose frames live on the wasm stack (no locals in linear
/// memory), so it exhausts the engine's stack limit rather than the guest's
/// shadow stack.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1).wrapping_add(black_box(depth))
}

impl Guest for Faults {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        let request: serde_json::Value =
            serde_json::from_str(&message.content).unwrap_or(serde_json::Value::Null);
        match request.get("fault").and_then(|f| f.as_str()) {
            Some("loop") => spin_forever(),
            Some("alloc") => {
                allocate_without_bound();
            }
            Some("panic") => panic!("fault plugin asked to panic"),
            Some("recurse") => {
                recurse(0);
            }
            _ => {}
        }
        Ok(Some(Message {
            id: String::new(),
            performative: Performative::Inform,
            sender: String::new(),
            receiver: Some(message.sender),
            capability: None,
            conversation_id: message.conversation_id,
            reply_with: None,
            in_reply_to: message.reply_with.or(Some(message.id)),
            content: r#"{"ok":true}"#.into(),
        }))
    }
}

export!(Faults);
