//! Put/Get/DeleteBucketCors: S3's CORS rules turned into bucketfs's
//! (`crate::cors::Rule`) and back. The rules are applied by `crate::cors`.

use s3s::dto::*;
use s3s::{S3Request, S3Response};

use super::Bucketfs;
use crate::cors::{rules_of, Rule, MAX_RULES};
use crate::error::{Error, Result};

fn rule_of(r: CORSRule) -> Result<Rule> {
    let rule = Rule {
        id: r.id,
        allowed_origins: r.allowed_origins,
        allowed_methods: r.allowed_methods,
        allowed_headers: r.allowed_headers.unwrap_or_default(),
        expose_headers: r.expose_headers.unwrap_or_default(),
        max_age_seconds: r.max_age_seconds,
    };
    match rule.problem() {
        Some(why) => Err(Error::InvalidArgument(why)),
        None => Ok(rule),
    }
}

fn rule_to(rule: &Rule) -> CORSRule {
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    CORSRule {
        id: rule.id.clone(),
        allowed_origins: rule.allowed_origins.clone(),
        allowed_methods: rule.allowed_methods.clone(),
        allowed_headers: some(&rule.allowed_headers),
        expose_headers: some(&rule.expose_headers),
        max_age_seconds: rule.max_age_seconds,
    }
}

impl Bucketfs {
    pub(super) async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> Result<S3Response<PutBucketCorsOutput>> {
        let given = req.input.cors_configuration.cors_rules;
        if given.is_empty() || given.len() > MAX_RULES {
            return Err(Error::InvalidArgument(format!(
                "a CORS configuration has 1 to {MAX_RULES} rules, not {}",
                given.len()
            )));
        }
        let rules = given.into_iter().map(rule_of).collect::<Result<Vec<_>>>()?;
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let json = serde_json::to_value(&rules).expect("rules serialise");
        self.meta.set_cors(&bucket, Some(&json)).await?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(super) async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> Result<S3Response<GetBucketCorsOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        let rules = bucket.cors.as_ref().ok_or(Error::NoSuchCorsConfiguration)?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(rules_of(rules).iter().map(rule_to).collect()),
        }))
    }

    pub(super) async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> Result<S3Response<DeleteBucketCorsOutput>> {
        let bucket = self.meta.bucket_uncached(&req.input.bucket).await?;
        self.meta.set_cors(&bucket, None).await?;
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }
}
