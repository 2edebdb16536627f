//! `version-probe`: an echo built against `caxton:agent@0.9.0`, a version
//! no host supports, so the tests can check the refusal names it.

wit_bindgen::generate!({ world: "agent", path: "wit" });

struct Probe;

impl Guest for Probe {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        Ok(Some(message))
    }
}

export!(Probe);
