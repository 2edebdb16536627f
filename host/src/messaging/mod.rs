//! FIPA-style messaging: the JSON form of messages, routing by name or
//! capability, bounded per-agent priority queues, conversations in the
//! store, and the agents' own `messaging` imports.

mod conversations;
mod mailbox;
mod message;
mod messenger;
mod router;
#[cfg(test)]
mod tests;

pub use conversations::{ConversationView, Conversations, ThreadMessage};
pub use mailbox::{Mailbox, Priority};
pub use message::MessageJson;
pub use messenger::{
    CallContext, Delivery, MessagingError, Messenger, QueueStats, Remote, RemoteCall,
};
pub use router::{Router, Strategy, Target};
