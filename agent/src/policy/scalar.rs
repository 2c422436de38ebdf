//! Deserializing validated scalars so that a validation error points at the offending value.
//!
//! `#[serde(try_from = "String")]` validates after the scalar was read, so `serde_yaml_ng`
//! reports the error at the enclosing sequence or mapping (and without the element index in the
//! field path). Validating inside the visitor instead makes the library attach the scalar's own
//! position and full path (`spec.files.read[2]`) to the error.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserializer,
    de::{self, Visitor},
};

/// A policy value written as one YAML string and validated as it is read.
pub(crate) trait ScalarRule: Sized {
    /// What the value should look like, for serde's "invalid type" messages.
    const EXPECTING: &'static str;

    /// Validates `text`; the error is a message naming the value and what is wrong with it.
    fn parse(text: &str) -> Result<Self, String>;
}

struct ScalarVisitor<T>(PhantomData<T>);

impl<T: ScalarRule> Visitor<'_> for ScalarVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        T::parse(text).map_err(E::custom)
    }
}

/// Reads a string scalar and validates it with `T::parse` inside the visitor.
pub(crate) fn deserialize_scalar<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: ScalarRule,
{
    deserializer.deserialize_str(ScalarVisitor(PhantomData))
}

/// Implements `Deserialize` for a `ScalarRule` type through `deserialize_scalar`.
macro_rules! deserialize_as_scalar {
    ($ty:ty) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::policy::scalar::deserialize_scalar(deserializer)
            }
        }
    };
}
pub(crate) use deserialize_as_scalar;
