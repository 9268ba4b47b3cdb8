//! Field-level validation: the error that names one field of a request, and [`FieldErrors`], the
//! one collector every use case fills while it reads its input, so that a client hears about
//! every bad field at once instead of one per attempt.
//!
//! A leaf module: it knows the validated values of [`crate::model`] and nothing above them.

use crate::model::{Coordinates, Email, ValueError};

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, in the request's own naming (`items[2].quantity`).
    pub field: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl FieldError {
    /// Builds one.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Values out of range or missing: every invalid field of one request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid input")]
pub struct Invalid(pub Vec<FieldError>);

impl From<FieldError> for Invalid {
    fn from(error: FieldError) -> Self {
        Invalid(vec![error])
    }
}

/// Collects the invalid fields of one request while its values are read. Each reader returns the
/// value it could make (normalised, or a placeholder when invalid) and records what was wrong;
/// [`FieldErrors::finish`] then says whether the request may go on.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is invalid.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Whether every field read so far is valid.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when every field was valid, else every error recorded.
    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }

    /// A required text: trimmed, not empty, at most `max` characters, no control characters
    /// but newlines and tabs.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let value = value.trim();
        if value.is_empty() {
            self.push(field, "must not be empty");
        } else if value.chars().count() > max {
            self.push(field, format!("must be at most {max} characters"));
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            self.push(field, "must not contain control characters");
        }
        value.to_owned()
    }

    /// An optional text: absent or blank is `None`, anything else is read as [`Self::text`].
    pub fn optional_text(
        &mut self,
        field: &str,
        value: Option<&str>,
        max: usize,
    ) -> Option<String> {
        let value = value.map(str::trim).filter(|v| !v.is_empty())?;
        Some(self.text(field, value, max))
    }

    /// An e-mail address.
    pub fn email(&mut self, field: &str, value: &str) -> Option<Email> {
        match Email::parse(value) {
            Ok(email) => Some(email),
            Err(e) => {
                self.push(field, e.to_string());
                None
            }
        }
    }

    /// A new password: 8 to 128 characters.
    pub fn password(&mut self, value: &str) {
        if !(8..=128).contains(&value.chars().count()) {
            self.push("password", "must be between 8 and 128 characters");
        }
    }

    /// A point, its fields named `{prefix}latitude` and `{prefix}longitude`.
    pub fn coordinates(
        &mut self,
        prefix: &str,
        latitude: f64,
        longitude: f64,
    ) -> Option<Coordinates> {
        match Coordinates::new(latitude, longitude) {
            Ok(c) => Some(c),
            Err(e) => {
                let which = if e == ValueError::Latitude {
                    "latitude"
                } else {
                    "longitude"
                };
                self.push(format!("{prefix}{which}"), e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named_once() {
        let mut errors = FieldErrors::new();
        assert_eq!(errors.text("name", "  Ann  ", 10), "Ann");
        errors.text("empty", "   ", 10);
        errors.text("long", "abcdef", 5);
        errors.text("control", "a\u{7}b", 5);
        assert_eq!(errors.text("newline", "a\nb", 5), "a\nb");
        assert_eq!(errors.optional_text("blank", Some("  "), 5), None);
        errors.email("email", "not-an-address");
        errors.password("short");
        errors.coordinates("delivery_", 91.0, 0.0);
        let Err(Invalid(fields)) = errors.finish() else {
            panic!("errors were recorded");
        };
        let named: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "empty",
                "long",
                "control",
                "email",
                "password",
                "delivery_latitude"
            ]
        );
    }

    #[test]
    fn no_errors_finish_ok() {
        let mut errors = FieldErrors::new();
        errors.coordinates("", 52.5, 13.4);
        errors.password("long enough");
        assert!(errors.is_empty());
        assert_eq!(errors.finish(), Ok(()));
    }
}
