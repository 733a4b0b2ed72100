//! Typed ids and the closed sets of values the store keeps as text.
//!
//! Every id is a string on disk and on the wire; the newtypes only make sure one kind of id
//! cannot be passed where another is expected (a mount id as a realm id, say). They encode
//! and decode as the string itself — in sqlx (`#[sqlx(transparent)]`), in the SQLite writer
//! (rusqlite) and in JSON (`#[serde(transparent)]`) — so no stored or served byte changes.
//! An id reads as its string (`Deref<Target = str>`); making one from a string is explicit
//! (`From<String>`, `From<&str>`).
//!
//! [`LeaseState`] and [`Outcome`] are stored in `TEXT` columns as their lower-case names,
//! exactly the strings used before they were enums.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a string id newtype.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }
    };
}

string_id! {
    /// A realm's id (not its slug).
    RealmId
}
string_id! {
    /// A user's id.
    UserId
}
string_id! {
    /// An API token's public id (never its secret).
    TokenId
}
string_id! {
    /// A lease's id, `<mount>/<role>/<uuid>`.
    LeaseId
}
string_id! {
    /// A role binding's id.
    BindingId
}

/// A value of a text column that is not one of its type's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}")]
pub struct UnknownValue {
    what: &'static str,
    value: String,
}

/// Declares a closed set of lower-case text values: serde, sqlx (any driver whose `str`
/// is a text type) and rusqlite encode a variant as its name.
///
/// sqlx's `#[derive(sqlx::Type)]` is not used for these: for PostgreSQL it declares the type
/// by name, which sqlx resolves with an extra catalog query on each connection, while these
/// columns are plain `TEXT`. Delegating to `str` binds and decodes them exactly as strings.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The stored (and serialized) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue { what: $what, value: other.to_owned() }),
                }
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text: &'q str = self.as_str();
                <&'q str as sqlx::Encode<'q, DB>>::encode(text, buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&'r str as sqlx::Decode<'r, DB>>::decode(value)?.parse()?)
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }
    };
}

text_enum! {
    /// Where a lease is in its life.
    LeaseState, "lease state" {
        /// Live; the reaper revokes it after expiry.
        Active = "active",
        /// Revoked through its engine.
        Revoked = "revoked",
        /// Expired by itself (not revocable), nothing to do.
        Expired = "expired",
        /// Revocation kept failing; reported for an operator.
        Irrevocable = "irrevocable",
    }
}

text_enum! {
    /// The outcome class of an audited action.
    Outcome, "audit outcome" {
        /// It was done.
        Success = "success",
        /// Refused (not authenticated, not allowed, not found, rate-limited).
        Denied = "denied",
        /// The request was wrong.
        Failure = "failure",
        /// The server failed.
        Error = "error",
    }
}

impl Outcome {
    /// The outcome class of an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            s if s < 400 => Outcome::Success,
            401 | 403 | 404 | 429 => Outcome::Denied,
            s if s < 500 => Outcome::Failure,
            _ => Outcome::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_enums_serialize_as_their_strings() {
        let id = RealmId::from("r-1");
        assert_eq!(serde_json::to_string(&id).ok().as_deref(), Some("\"r-1\""));
        assert_eq!(&*id, "r-1");
        for s in LeaseState::ALL {
            let json = serde_json::to_string(s).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(s.as_str().parse::<LeaseState>().ok(), Some(*s));
        }
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>().ok(), Some(*o));
        }
        assert!("expiring".parse::<LeaseState>().is_err());
        assert_eq!(Outcome::of_status(429), Outcome::Denied);
        assert_eq!(Outcome::of_status(413), "failure");
    }
}
