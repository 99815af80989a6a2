//! json: to be written (see lib.rs for the contract).

use crate::{Dependency, InvalidSchema};

#[derive(Debug, Clone)]
pub struct JsonSchema {
    text: String,
}

impl JsonSchema {
    pub fn parse(text: &str, dependencies: &[Dependency<'_>]) -> Result<JsonSchema, InvalidSchema> {
        let _ = dependencies;
        Ok(JsonSchema {
            text: text.to_string(),
        })
    }

    pub fn canonical(&self) -> String {
        self.text.clone()
    }

    pub fn normalized(&self) -> String {
        self.text.clone()
    }

    pub fn incompatibilities_reading(&self, older: &JsonSchema) -> Vec<String> {
        let _ = older;
        Vec::new()
    }
}
