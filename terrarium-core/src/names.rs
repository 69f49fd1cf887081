//! Names LXD would reject are refused before LXD is called.

use crate::error::{Error, Result};

/// LXD's rules for instance names: 1 to 63 letters, digits and hyphens,
/// not starting with a digit or hyphen, not ending with a hyphen.
pub fn validate_instance_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.len() > 63 {
        Some("is longer than 63 characters")
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Some("may contain only letters, digits and hyphens")
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        Some("must not start with a digit")
    } else if name.starts_with('-') {
        Some("must not start with a hyphen")
    } else if name.ends_with('-') {
        Some("must not end with a hyphen")
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::Usage(format!(
            "invalid instance name '{name}': it {p}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        for ok in ["a", "web-1", "A1", &"x".repeat(63)] {
            assert!(validate_instance_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("1web", "digit"),
            ("-web", "start with a hyphen"),
            ("web-", "end with a hyphen"),
            ("we_b", "letters, digits and hyphens"),
            ("web.example", "letters, digits and hyphens"),
            ("wéb", "letters, digits and hyphens"),
            (&"x".repeat(64), "longer than 63"),
        ] {
            let err = validate_instance_name(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
    }
}
