//! Validation problems with the JSON path of each bad field (the API answers 422 with all
//! of them at once; configuration errors name the key).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field, like `schedule.cron` or `payload.steps[2].selector`.
    pub path: String,
    pub message: String,
}

#[derive(Debug, Default, Clone)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.to_string(),
            message: message.into(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
    pub fn as_slice(&self) -> &[FieldError] {
        &self.0
    }
}
