//! Enums that KEDA spells as strings: the values this product knows, and any other the CRD
//! admits kept as `Other`, so every ScaledObject of the cluster reads.

/// Declares such an enum with its string form (`as_str`, `From<String>`, `Into<String>`, serde
/// as a string). The first variant is the default.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $first_doc:literal $first:ident => $first_text:literal, $($doc:literal $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            #[doc = $first_doc]
            $first,
            $(#[doc = $doc] $variant,)*
            /// A value this product does not know (a later KEDA's, or one KEDA refuses).
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $name::$first => $first_text,
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$first
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $first_text => $name::$first,
                    $($text => $name::$variant,)*
                    _ => $name::Other(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }
    };
}

pub(crate) use string_enum;
