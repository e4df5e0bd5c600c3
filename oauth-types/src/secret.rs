//! The secret newtype macro (after oauth2-rs's `new_secret_type!`).

/// Defines a secret string newtype: a tuple struct over [`secrecy::SecretString`], so the memory is
/// zeroed on drop, whose `Debug` prints `Name([redacted])` and `Display` prints `[redacted]`, and
/// whose value is reached only through `.secret()`, at the one place that sends or stores it.
///
/// `secret_type!(Name, serde)` also implements `Serialize` and `Deserialize`, writing and reading
/// the real value: only for a type that must be stored and read back (the client's token store).
/// Without it, a secret cannot be serialized by accident.
///
/// ```
/// oauth_types::secret_type!(
///     /// An example secret.
///     ApiKey
/// );
/// let key = ApiKey::new("hunter2");
/// assert_eq!(format!("{key:?} {key}"), "ApiKey([redacted]) [redacted]");
/// assert_eq!(key.secret(), "hunter2");
/// ```
#[macro_export]
macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name($crate::__private::secrecy::SecretString);

        impl $name {
            /// Wraps a value; from here on it only prints as `[redacted]`.
            pub fn new(value: impl Into<String>) -> Self {
                Self($crate::__private::secrecy::SecretString::from(value.into()))
            }

            /// The secret value. Call this only where the value is sent or stored, never to log it.
            pub fn secret(&self) -> &str {
                $crate::__private::secrecy::ExposeSecret::expose_secret(&self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, serde) => {
        $crate::secret_type!($(#[$meta])* $name);

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.secret())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                <::std::string::String as $crate::__private::serde::Deserialize>::deserialize(
                    deserializer,
                )
                .map(Self::new)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::secret_type!(
        /// A test secret.
        Plain
    );
    crate::secret_type!(
        /// A test secret that can be stored.
        Stored,
        serde
    );

    #[test]
    fn debug_and_display_never_show_the_value() {
        let plain = Plain::new("canary-plain");
        let stored = Stored::new(String::from("canary-stored"));
        let printed = format!(
            "{plain:?} {plain} {stored:?} {stored} {:#?}",
            (&plain, &stored)
        );
        assert!(!printed.contains("canary"), "{printed}");
        assert_eq!(format!("{plain:?}"), "Plain([redacted])");
        assert_eq!(format!("{stored}"), "[redacted]");
        assert_eq!(plain.secret(), "canary-plain");
        assert_eq!(plain.clone().secret(), "canary-plain");
    }

    #[test]
    fn the_serde_form_stores_and_reads_back_the_real_value() {
        let json = serde_json::to_string(&Stored::new("canary")).expect("serializes");
        assert_eq!(json, r#""canary""#);
        let back: Stored = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back.secret(), "canary");
    }
}
