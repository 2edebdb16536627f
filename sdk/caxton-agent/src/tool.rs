//! Tools as typed functions: the SDK decodes the JSON input into the tool's
//! type and encodes its output, so `invoke` never touches JSON text.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, ToolDescription};

/// A tool: a function from JSON to JSON that agents call through `tools`.
///
/// Input that does not decode as [`Tool::Input`] is answered with
/// `invalid-input` before `invoke` runs. Use `serde_json::Value` for
/// either type to work on raw JSON.
pub trait Tool {
    /// The tool's name in its description. Agents call it by the
    /// manifest's `name`, which the host shows in its place: keep the two
    /// equal.
    const NAME: &'static str;
    /// One or two sentences on what the tool does (shown to language models).
    const DESCRIPTION: &'static str;
    type Input: DeserializeOwned;
    type Output: Serialize;

    /// JSON Schema of the input. The default accepts any object; a precise
    /// schema helps models call the tool correctly.
    fn input_schema() -> serde_json::Value {
        serde_json::json!({ "type": "object" })
    }

    fn invoke(input: Self::Input) -> Result<Self::Output, Error>;
}

#[doc(hidden)]
pub fn describe<T: Tool>() -> ToolDescription {
    ToolDescription {
        name: T::NAME.into(),
        description: T::DESCRIPTION.into(),
        input_schema: T::input_schema().to_string(),
    }
}

#[doc(hidden)]
pub fn invoke<T: Tool>(input: &str) -> Result<String, Error> {
    let input: T::Input =
        serde_json::from_str(input).map_err(|e| Error::InvalidInput(format!("input: {e}")))?;
    let output = T::invoke(input)?;
    serde_json::to_string(&output).map_err(|e| Error::Internal(format!("output is not JSON: {e}")))
}
