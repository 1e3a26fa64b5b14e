//! The standard headers S3 keeps with an object (`Cache-Control`,
//! `Content-Disposition`, `Content-Encoding`, `Content-Language`,
//! `Expires`) and gives back on GET and HEAD, where `response-*` query
//! parameters of a GET may override them. They are stored beside the user
//! metadata under names no `x-amz-meta-*` header can produce (`:` first).

use std::collections::HashMap;

use s3s::dto::{Timestamp, TimestampFormat};

use crate::meta::Version;

/// What marks a stored standard header among the metadata.
pub const MARK: char = ':';

/// An object's stored standard headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandardHeaders {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    /// As an HTTP date.
    pub expires: Option<String>,
}

/// The headers of a request's input (PutObject, CopyObject,
/// CreateMultipartUpload: the same field names).
macro_rules! standard_headers_of {
    ($input:expr) => {
        $crate::s3::headers::StandardHeaders {
            cache_control: $input.cache_control.clone(),
            content_disposition: $input.content_disposition.clone(),
            content_encoding: $input.content_encoding.clone(),
            content_language: $input.content_language.clone(),
            expires: $input.expires.as_ref().map($crate::s3::headers::http_date),
        }
    };
}
pub(super) use standard_headers_of;

/// Sets an output's (GetObject, HeadObject) fields from stored headers.
macro_rules! set_standard_headers {
    ($output:expr, $headers:expr) => {{
        let h = $headers;
        $output.cache_control = h.cache_control;
        $output.content_disposition = h.content_disposition;
        $output.content_encoding = h.content_encoding;
        $output.content_language = h.content_language;
        $output.expires = h
            .expires
            .as_deref()
            .and_then($crate::s3::headers::parse_http_date);
    }};
}
pub(super) use set_standard_headers;

const NAMES: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

impl StandardHeaders {
    fn fields(&self) -> [&Option<String>; 5] {
        [
            &self.cache_control,
            &self.content_disposition,
            &self.content_encoding,
            &self.content_language,
            &self.expires,
        ]
    }

    /// Adds them to the metadata to store.
    pub fn store(&self, metadata: &mut HashMap<String, String>) {
        for (name, value) in NAMES.iter().zip(self.fields()) {
            if let Some(v) = value {
                metadata.insert(format!("{MARK}{name}"), v.clone());
            }
        }
    }

    /// Those a version was stored with.
    pub fn of(version: &Version) -> Self {
        let stored = version.stored_metadata();
        let get = |name: &str| stored.get(&format!("{MARK}{name}")).cloned();
        StandardHeaders {
            cache_control: get(NAMES[0]),
            content_disposition: get(NAMES[1]),
            content_encoding: get(NAMES[2]),
            content_language: get(NAMES[3]),
            expires: get(NAMES[4]),
        }
    }
}

pub fn http_date(t: &Timestamp) -> String {
    let mut out = Vec::new();
    let _ = t.format(TimestampFormat::HttpDate, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_headers_sit_apart_from_user_metadata() {
        let headers = StandardHeaders {
            cache_control: Some("max-age=60".into()),
            content_encoding: Some("gzip".into()),
            expires: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            ..Default::default()
        };
        let mut metadata = HashMap::from([("color".to_string(), "blue".to_string())]);
        headers.store(&mut metadata);
        assert_eq!(metadata[":cache-control"], "max-age=60");
        assert_eq!(metadata.len(), 4);
        let t = parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(http_date(&t), "Wed, 21 Oct 2015 07:28:00 GMT");
    }
}
