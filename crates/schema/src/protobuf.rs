//! protobuf: to be written (see lib.rs for the contract).

use crate::{Dependency, InvalidSchema};

#[derive(Debug, Clone)]
pub struct ProtobufSchema {
    text: String,
}

impl ProtobufSchema {
    pub fn parse(
        text: &str,
        dependencies: &[Dependency<'_>],
    ) -> Result<ProtobufSchema, InvalidSchema> {
        let _ = dependencies;
        Ok(ProtobufSchema {
            text: text.to_string(),
        })
    }

    pub fn canonical(&self) -> String {
        self.text.clone()
    }

    pub fn normalized(&self) -> String {
        self.text.clone()
    }

    pub fn incompatibilities_reading(&self, older: &ProtobufSchema) -> Vec<String> {
        let _ = older;
        Vec::new()
    }
}
