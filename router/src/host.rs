//! Virtual-host-style addressing (`BUCKET.DOMAIN`) beside path style.
//!
//! With `--domain s3.example` a request for `photos.s3.example` addresses the
//! bucket `photos`; every other Host (the bare domain, an IP address, a load
//! balancer name) is path style, so enabling a domain never breaks clients
//! that address the router by IP.

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

pub struct Domains(pub Vec<String>);

impl Domains {
    /// The bucket a Host header names, if it is `BUCKET.DOMAIN` for one of ours.
    pub fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        });
        self.0.iter().find_map(|domain| {
            let bucket = name.strip_suffix(domain.as_str())?.strip_suffix('.')?;
            (!bucket.is_empty()).then_some(bucket)
        })
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(host).with_bucket(bucket.to_ascii_lowercase()),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_subdomains_of_our_domains_name_buckets() {
        let d = Domains(vec!["s3.local".into(), "storage.example.com".into()]);
        assert_eq!(d.bucket_of("photos.s3.local"), Some("photos"));
        assert_eq!(d.bucket_of("photos.s3.local:9000"), Some("photos"));
        assert_eq!(
            d.bucket_of("my.dotted.bucket.storage.example.com"),
            Some("my.dotted.bucket")
        );
        assert_eq!(d.bucket_of("s3.local:9000"), None);
        assert_eq!(d.bucket_of("127.0.0.1:9000"), None);
        assert_eq!(d.bucket_of("evils3.local"), None);
        assert_eq!(d.bucket_of("[::1]:9000"), None);
    }
}
