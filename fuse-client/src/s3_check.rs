//! The check `bucketfs mount` makes before mounting: one listing of the
//! bucket, not retried, whose failure is said plainly (a wrong endpoint, an
//! untrusted certificate, refused credentials, no such bucket). Without it
//! a mount came up and every access failed with EIO after the retries.

use super::*;

impl S3 {
    /// Can this client list its bucket? If not, why not, in words.
    pub async fn check_bucket(&self) -> Result<(), String> {
        let name = self.bucket.name();
        let base = self.bucket.base_url().as_str().trim_end_matches('/');
        let url = base.strip_suffix(&format!("/{name}")).unwrap_or(base).to_string();
        let mut call = Call::new(Method::GET, None)
            .query("list-type", "2")
            .query("max-keys", "0");
        call.attempts = 1;
        let resp = match self.send(call).await {
            Ok(resp) => resp,
            Err(e) => {
                let e = e.to_string();
                let hint = if e.contains("certificate") || e.contains("UnknownIssuer") {
                    " (trust the server's CA with --ca-file)"
                } else {
                    ""
                };
                return Err(format!("cannot reach the store at {url}: {e}{hint}"));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let code = xml_field(&text, "Code").unwrap_or_default();
        let message = xml_field(&text, "Message")
            .filter(|m| !m.is_empty())
            .map_or(String::new(), |m| format!(": {m}"));
        Err(match code.as_str() {
            "NoSuchBucket" => format!("there is no bucket {name} at {url}"),
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" => format!(
                "{url} refused these credentials for bucket {name} ({code}{message}); \
                 check the access key and secret"
            ),
            _ => format!("{url} answered {status} {code}{message} for bucket {name}"),
        })
    }
}
