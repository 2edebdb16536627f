// {{name}}: a Caxton tool in JavaScript, built with componentize-js.
//
// Counts the words and characters of a text: input {"text": "..."},
// output {"words": N, "characters": N}. Bad input is answered with
// `throw { tag: 'invalid-input', val: 'why' }` (the tags are the WIT
// `error` cases); any other exception traps the call, and the caller gets
// `plugin_trap` with its message.

const schema = {
  type: 'object',
  required: ['text'],
  additionalProperties: false,
  properties: { text: { type: 'string', description: 'The text to count' } },
};

export function describe() {
  return {
    name: '{{name}}',
    description: 'Counts the words and characters of a text.',
    inputSchema: JSON.stringify(schema),
  };
}

export function invoke(input) {
  let request;
  try {
    request = JSON.parse(input);
  } catch (error) {
    throw { tag: 'invalid-input', val: `input is not JSON: ${error.message}` };
  }
  if (
    !request ||
    typeof request.text !== 'string' ||
    Object.keys(request).length !== 1
  ) {
    throw { tag: 'invalid-input', val: 'input must be {"text": "..."} and nothing else' };
  }
  const words = request.text.split(/\s+/).filter((word) => word.length > 0).length;
  return JSON.stringify({ words, characters: [...request.text].length });
}
