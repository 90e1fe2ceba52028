//! The mistakes found in one submitted form, shown all at once: a summary
//! at the top that links to each field and takes the focus, and each
//! message beside its field (the GOV.UK error pattern; WCAG 2.2 3.3.1 and
//! 3.3.3). `templates/partials/errors.html` renders them.

use crate::domain::PasswordProblems;

/// One mistake, tied to the `id` of the field it is about.
#[derive(Clone, Debug)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// The mistakes of one form, in the order of its fields.
#[derive(Clone, Debug, Default)]
pub struct FormErrors(Vec<FieldError>);

impl FormErrors {
    /// Adds a mistake about the field with this `id`.
    pub fn add(&mut self, field: &'static str, message: impl ToString) {
        self.0.push(FieldError { field, message: message.to_string() });
    }

    /// A form with one mistake.
    pub fn one(field: &'static str, message: impl ToString) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }

    /// A new password's problems, on the `password` and `password_confirm` fields.
    pub fn add_password_problems(&mut self, problems: PasswordProblems) {
        if let Some(problem) = problems.password {
            self.add("password", problem);
        }
        if let Some(problem) = problems.confirmation {
            self.add("password_confirm", problem);
        }
    }

    /// The message about this field, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|error| error.field == field).map(|error| error.message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }
}
