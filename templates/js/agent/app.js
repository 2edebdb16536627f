// {{name}}: a Caxton agent in JavaScript, built with componentize-js.
//
// It keeps notes in its memory (the manifest grants `memory`):
// - {"remember": "text"} stores the text as an observation of `notes`;
// - {"recall": "question", "limit": 5} replies with the closest notes;
// - anything else is echoed back as {"echo": ...}.
//
// Errors: `throw { tag: 'invalid-input', val: 'why' }` answers the caller
// with a typed error (`plugin_error`, kind `invalid-input`); the tags are
// the WIT `error` cases. Any other exception traps the call: the caller gets `plugin_trap`
// with its message, and the host keeps serving.
import { log } from 'caxton:agent/log@{{wit_version}}';
import { remember, search } from 'caxton:agent/memory@{{wit_version}}';

/// An `inform` answering `to`: to its sender, in its conversation. The
/// host fills in the reply's id and sender.
function reply(to, content) {
  return {
    id: '',
    performative: 'inform',
    sender: '',
    receiver: to.sender,
    capability: undefined,
    conversationId: to.conversationId,
    replyWith: undefined,
    inReplyTo: to.replyWith ?? to.id,
    content: JSON.stringify(content),
  };
}

export function handle(message) {
  let request;
  try {
    request = JSON.parse(message.content);
  } catch (error) {
    throw { tag: 'invalid-input', val: `content is not JSON: ${error.message}` };
  }
  if (request && typeof request.remember === 'string') {
    remember('notes', 'note', [request.remember]);
    log('info', `stored a note of ${request.remember.length} characters`);
    return reply(message, { stored: request.remember });
  }
  if (request && typeof request.recall === 'string') {
    const limit = request.limit ?? 5;
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      throw { tag: 'invalid-input', val: 'limit must be a whole number from 1 to 100' };
    }
    const hits = search(request.recall, limit);
    return reply(message, { notes: hits.map((hit) => hit.observation) });
  }
  return reply(message, { echo: request });
}
