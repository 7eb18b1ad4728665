//! Arguments checked against a JSON Schema given as data (tools described
//! at run time: MCP servers' `inputSchema`, command tools from the
//! configuration). Messages name the member at fault the way typed tools'
//! messages do (`numbers.0: "a" is not of type "number"`), and are sent
//! to the caller with the code `invalid_args`.

use lacre_proto::{Map, Value};

/// A schema that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON Schema for tool {tool:?}: {reason}")]
pub struct SchemaError {
    /// The tool.
    pub tool: String,
    /// What the validator said.
    pub reason: String,
}

/// Most messages joined into one `invalid_args` reply.
const MAX_MESSAGES: usize = 5;

/// A compiled argument schema.
pub struct ArgsSchema {
    validator: jsonschema::Validator,
}

impl ArgsSchema {
    /// Compiles `schema` for `tool`. An argument object must be an object,
    /// whatever the schema says (the seed's `args` is a `Dict`).
    pub fn compile(tool: &str, schema: &serde_json::Value) -> Result<ArgsSchema, SchemaError> {
        jsonschema::validator_for(schema)
            .map(|validator| ArgsSchema { validator })
            .map_err(|e| SchemaError {
                tool: tool.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Checks an argument object; the message lists what is wrong.
    pub fn check(&self, args: &Map) -> Result<(), String> {
        let instance = Value::Object(args.clone()).to_serde();
        let mut messages: Vec<String> = self
            .validator
            .iter_errors(&instance)
            .take(MAX_MESSAGES + 1)
            .map(|e| {
                let path = e
                    .instance_path()
                    .as_str()
                    .trim_start_matches('/')
                    .replace('/', ".");
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if messages.is_empty() {
            return Ok(());
        }
        if messages.len() > MAX_MESSAGES {
            messages.truncate(MAX_MESSAGES);
            messages.push("...".to_owned());
        }
        Err(messages.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lacre_proto::ParseLimits;

    fn args(text: &str) -> Map {
        lacre_proto::parse_object(text.as_bytes(), ParseLimits::default()).unwrap()
    }

    fn numbers_schema() -> ArgsSchema {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"numbers": {"type": "array", "items": {"type": "number"}, "minItems": 1}},
            "required": ["numbers"],
            "additionalProperties": false
        });
        ArgsSchema::compile("sum", &schema).unwrap()
    }

    #[test]
    fn valid_arguments_pass() {
        assert_eq!(
            numbers_schema().check(&args(r#"{"numbers":[1,2.5]}"#)),
            Ok(())
        );
    }

    #[test]
    fn messages_name_the_member() {
        let s = numbers_schema();
        let e = s.check(&args(r#"{"numbers":[1,"a"]}"#)).unwrap_err();
        assert_eq!(e, r#"numbers.1: "a" is not of type "number""#);
        let e = s.check(&args(r#"{}"#)).unwrap_err();
        assert_eq!(e, r#""numbers" is a required property"#);
        let e = s.check(&args(r#"{"numbers":[1],"x":1}"#)).unwrap_err();
        assert!(e.contains("Additional properties are not allowed"), "{e}");
    }

    #[test]
    fn a_broken_schema_is_refused_at_registration() {
        let bad = serde_json::json!({"type": "no-such-type"});
        assert!(ArgsSchema::compile("t", &bad).is_err());
    }
}
