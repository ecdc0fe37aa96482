//! An e-mail address a person gives for their notifications: one line,
//! `local@domain`, at most 254 bytes (RFC 5321's limit on a path), checked
//! by lettre's parser too, so whatever is accepted here can be sent to.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Invalid, invalid};

/// A valid address for mail. Stored as the plain string; a stored one is
/// read back as it is ([`EmailAddress::from_stored`]), never re-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its `<>`.
    pub const MAX_BYTES: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        if raw.is_empty() {
            return invalid("Give an e-mail address, like name@example.com.");
        }
        if raw.len() > Self::MAX_BYTES {
            return invalid(format!(
                "An e-mail address has at most {} bytes.",
                Self::MAX_BYTES
            ));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("An e-mail address has no spaces or line breaks.");
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return invalid(format!(
                "'{raw}' is not an e-mail address: it needs an @, like name@example.com."
            ));
        };
        if local.is_empty() || domain.is_empty() {
            return invalid(format!(
                "'{raw}' is not an e-mail address: write it as name@example.com."
            ));
        }
        if raw.parse::<lettre::Address>().is_err() {
            return invalid(format!(
                "'{raw}' is not an e-mail address mail can be sent to; write it as name@example.com."
            ));
        }
        Ok(EmailAddress(raw.to_string()))
    }

    /// An address this program stored; trusted as it is.
    pub fn from_stored(raw: &str) -> Self {
        EmailAddress(raw.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(EmailAddress::from_stored(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::EmailAddress;

    #[test]
    fn plain_addresses_are_accepted_and_trimmed() {
        for ok in [
            "bob@example.com",
            "  bob.smith+latch@mail.example.co.uk ",
            "x@localhost",
        ] {
            let a = EmailAddress::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(a.as_str(), ok.trim());
        }
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        let long = format!("{}@example.com", "a".repeat(250));
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("bob", "no @"),
            ("@example.com", "no local part"),
            ("bob@", "no domain"),
            ("bob smith@example.com", "a space"),
            (
                "bob@example.com\r\nBcc: eve@example.com",
                "a header injection",
            ),
            ("bob\u{7}@example.com", "a control character"),
            ("bob@exa mple.com", "a space in the domain"),
            ("bob@@example.com", "two @"),
            ("Bob <bob@example.com>", "a name with the address"),
            (long.as_str(), "longer than 254 bytes"),
        ];
        for (raw, why) in cases {
            let err = EmailAddress::parse(raw).expect_err(why);
            assert!(err.0.ends_with('.'), "{why}: a sentence: {}", err.0);
        }
    }
}
