//! A small S3 client: requests signed by rusty-s3 (presigned URLs, so no
//! body hashing), sent with ureq. Errors say which part failed: the
//! endpoint, the credentials, the bucket or a permission.

use std::io::Read;
use std::time::Duration;

use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::error::{Error, Result};

/// How long a signed URL stays valid; a part upload must start within it.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// Where and as whom: everything a request needs.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
}

/// What went wrong, by the part a user has to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No HTTP answer at all (refused, reset, DNS, TLS, timeout).
    Unreachable(String),
    Credentials(String),
    NoBucket,
    Permission(String),
    NotFound,
    /// Any other answer: status and S3 error code.
    Other(u16, String),
}

pub struct Client {
    target: Target,
    /// Every key this client reads, writes or deletes starts with this.
    scope: String,
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(target: &Target) -> Result<Client> {
        let endpoint: url::Url = target
            .endpoint
            .parse()
            .map_err(|e| Error::Usage(format!("endpoint '{}': {e}", target.endpoint)))?;
        // Path style works with every server (MinIO, Garage, s3s, moto)
        // and with AWS; virtual hosts need DNS for each bucket.
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            target.bucket.clone(),
            target.region.clone(),
        )
        .map_err(|e| Error::Usage(format!("endpoint '{}': {e}", target.endpoint)))?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .build();
        Ok(Client {
            target: target.clone(),
            scope: String::new(),
            bucket,
            creds: Credentials::new(target.access_key.clone(), target.secret_key.clone()),
            agent,
        })
    }

    /// Confine the client to keys under `prefix` (`terrarium/`, or empty
    /// for the whole bucket).
    pub fn within(mut self, prefix: &str) -> Client {
        self.scope = prefix.to_string();
        self
    }

    /// Refuse a key that could leave the scope: the URL library resolves
    /// `..` segments, so `p/../other/x` would reach another bucket.
    fn check(&self, key: &str) -> Result<()> {
        check_key(&self.scope, key)
    }

    fn call(&self, method: &str, url: &url::Url, body: Option<&[u8]>) -> Result<ureq::Response> {
        let req = self.agent.request_url(method, url);
        let res = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        res.map_err(|e| self.error(method, url, e))
    }

    fn error(&self, method: &str, url: &url::Url, e: ureq::Error) -> Error {
        let what = format!("{method} {}", url.path());
        match classify(e) {
            Failure::Unreachable(m) => Error::Unavailable(format!(
                "S3 endpoint {} did not answer ({what}): {m}",
                self.target.endpoint
            )),
            Failure::Credentials(c) => Error::Remote(format!(
                "S3 refused the credentials (access key '{}'): {c}",
                self.target.access_key
            )),
            Failure::NoBucket => Error::Remote(format!(
                "bucket '{}' does not exist at {}",
                self.target.bucket, self.target.endpoint
            )),
            Failure::Permission(c) => Error::Remote(format!(
                "S3 denied permission for {what}: {c} (does the key's policy allow it?)"
            )),
            Failure::NotFound => Error::NotFound {
                kind: "S3 object",
                name: url.path().to_string(),
            },
            Failure::Other(status, c) => {
                Error::Remote(format!("S3 answered {status} to {what}: {c}"))
            }
        }
    }

    pub fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        self.check(key)?;
        let url = self
            .bucket
            .put_object(Some(&self.creds), key)
            .sign(SIGNED_FOR);
        self.call("PUT", &url, Some(body)).map(drop)
    }

    pub fn get(&self, key: &str) -> Result<Box<dyn Read + Send + Sync>> {
        self.check(key)?;
        let url = self
            .bucket
            .get_object(Some(&self.creds), key)
            .sign(SIGNED_FOR);
        Ok(self.call("GET", &url, None)?.into_reader())
    }

    pub fn get_bytes(&self, key: &str, limit: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.get(key)?
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| Error::Remote(format!("reading S3 object {key}: {e}")))?;
        Ok(buf)
    }

    /// Delete; an object that is already gone is not an error.
    pub fn delete(&self, key: &str) -> Result<()> {
        self.check(key)?;
        let url = self
            .bucket
            .delete_object(Some(&self.creds), key)
            .sign(SIGNED_FOR);
        match self.call("DELETE", &url, None) {
            Err(Error::NotFound { .. }) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Every object under `prefix`, following continuation tokens.
    pub fn list(&self, prefix: &str) -> Result<Vec<Object>> {
        if !prefix.starts_with(&self.scope) || prefix.split('/').any(|s| s == "..") {
            return Err(Error::Usage(format!(
                "refusing to list '{prefix}': outside the configured prefix '{}'",
                self.scope
            )));
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.creds));
            action.with_prefix(prefix);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let text = read_text(self.call("GET", &url, None)?)?;
            let page = ListObjectsV2::parse_response(&text)
                .map_err(|e| Error::parse("S3 object listing", e))?;
            out.extend(page.contents.into_iter().map(|c| Object {
                key: c.key,
                size: c.size.unwrap_or(0),
            }));
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    pub fn create_multipart(&self, key: &str) -> Result<String> {
        self.check(key)?;
        let url = self
            .bucket
            .create_multipart_upload(Some(&self.creds), key)
            .sign(SIGNED_FOR);
        let text = read_text(self.call("POST", &url, Some(b""))?)?;
        let parsed = CreateMultipartUpload::parse_response(&text)
            .map_err(|e| Error::parse("S3 CreateMultipartUpload answer", e))?;
        Ok(parsed.upload_id().to_string())
    }

    /// Upload one part; returns its ETag.
    pub fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u16,
        body: &[u8],
    ) -> Result<String> {
        self.check(key)?;
        let url = self
            .bucket
            .upload_part(Some(&self.creds), key, part, upload_id)
            .sign(SIGNED_FOR);
        let res = self.call("PUT", &url, Some(body))?;
        res.header("ETag")
            .map(String::from)
            .ok_or_else(|| Error::Remote(format!("S3 sent no ETag for part {part} of {key}")))
    }

    pub fn complete_multipart(&self, key: &str, upload_id: &str, etags: &[String]) -> Result<()> {
        self.check(key)?;
        let action = self.bucket.complete_multipart_upload(
            Some(&self.creds),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let body = action.body();
        let res = self.call("POST", &url, Some(body.as_bytes()))?;
        // S3 may answer 200 and still report an error in the body.
        let text = read_text(res)?;
        if text.contains("<Error>") {
            return Err(Error::Remote(format!(
                "S3 could not complete the upload of {key}: {}",
                xml_field(&text, "Code").unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Abort; an upload that no longer exists counts as aborted.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.check(key)?;
        let url = self
            .bucket
            .abort_multipart_upload(Some(&self.creds), key, upload_id)
            .sign(SIGNED_FOR);
        match self.call("DELETE", &url, None) {
            Err(Error::NotFound { .. }) => Ok(()),
            r => r.map(drop),
        }
    }
}

/// A key is usable when it lies under `scope` and has no `.`, `..` or
/// empty segment, no leading `/` and no backslash or control character.
pub fn check_key(scope: &str, key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key.chars().any(char::is_control)
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        return Err(Error::Integrity(format!(
            "refusing S3 key '{key}': no empty, . or .. segments, leading /, backslashes or control characters"
        )));
    }
    if !key.starts_with(scope) {
        return Err(Error::Integrity(format!(
            "refusing S3 key '{key}': outside the configured prefix '{scope}'"
        )));
    }
    Ok(())
}

fn read_text(res: ureq::Response) -> Result<String> {
    res.into_string()
        .map_err(|e| Error::Remote(format!("reading S3's answer: {e}")))
}

/// The text of the first `<tag>` in an S3 XML answer.
pub fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

/// Sort an S3 error answer into what the user has to fix.
pub fn classify(e: ureq::Error) -> Failure {
    match e {
        // Not `t.to_string()`: it carries the presigned URL.
        ureq::Error::Transport(t) => {
            let mut m = t.kind().to_string();
            if let Some(msg) = t.message() {
                m.push_str(&format!(": {msg}"));
            }
            if let Some(src) = std::error::Error::source(&t) {
                m.push_str(&format!(": {src}"));
            }
            Failure::Unreachable(m)
        }
        ureq::Error::Status(status, res) => {
            let body = res.into_string().unwrap_or_default();
            classify_answer(status, &body)
        }
    }
}

pub fn classify_answer(status: u16, body: &str) -> Failure {
    let code = xml_field(body, "Code").unwrap_or_default();
    let message = xml_field(body, "Message").unwrap_or_default();
    let detail = if message.is_empty() {
        code.clone()
    } else {
        format!("{code}: {message}")
    };
    match code.as_str() {
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidToken"
        | "ExpiredToken"
        | "AuthorizationHeaderMalformed"
        | "InvalidSecurity" => Failure::Credentials(detail),
        "NoSuchBucket" => Failure::NoBucket,
        "AccessDenied" | "AllAccessDisabled" => Failure::Permission(detail),
        "NoSuchKey" | "NoSuchUpload" => Failure::NotFound,
        _ if status == 404 => Failure::NotFound,
        _ if status == 403 => Failure::Permission(detail),
        _ => Failure::Other(
            status,
            if detail.is_empty() {
                body.chars().take(200).collect()
            } else {
                detail
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_what_to_fix() {
        let xml = |c: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{c}</Code><Message>m</Message></Error>")
        };
        assert!(matches!(
            classify_answer(403, &xml("SignatureDoesNotMatch")),
            Failure::Credentials(_)
        ));
        assert!(matches!(
            classify_answer(403, &xml("InvalidAccessKeyId")),
            Failure::Credentials(_)
        ));
        assert_eq!(
            classify_answer(404, &xml("NoSuchBucket")),
            Failure::NoBucket
        );
        assert!(matches!(
            classify_answer(403, &xml("AccessDenied")),
            Failure::Permission(_)
        ));
        assert_eq!(classify_answer(404, &xml("NoSuchKey")), Failure::NotFound);
        assert_eq!(classify_answer(404, ""), Failure::NotFound);
        assert_eq!(
            classify_answer(500, &xml("InternalError")),
            Failure::Other(500, "InternalError: m".into())
        );
    }

    #[test]
    fn xml_fields_are_read() {
        assert_eq!(
            xml_field("<a><Code>X</Code></a>", "Code").as_deref(),
            Some("X")
        );
        assert_eq!(xml_field("<a></a>", "Code"), None);
    }

    #[test]
    fn requests_are_path_style_and_presigned() {
        let c = Client::new(&Target {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "b".into(),
            region: "us-east-1".into(),
            access_key: "AK".into(),
            secret_key: "SK".into(),
        })
        .unwrap();
        let url = c.bucket.put_object(Some(&c.creds), "p/k").sign(SIGNED_FOR);
        assert_eq!(url.path(), "/b/p/k");
        let q = url.query().unwrap();
        assert!(q.contains("X-Amz-Signature="), "{q}");
        assert!(q.contains("X-Amz-Credential=AK%2F"), "{q}");
        assert!(!q.contains("SK"), "the secret never travels: {q}");
    }

    #[test]
    fn keys_outside_the_prefix_or_with_dot_segments_are_refused() {
        let ok = [
            "terrarium/web/20261201T000000Z/manifest.json",
            "terrarium/.probe-1",
        ];
        for k in ok {
            assert!(check_key("terrarium/", k).is_ok(), "{k}");
        }
        let bad = [
            "../other/x",
            "terrarium/../other/x",
            "terrarium/web/../../keepme.txt",
            "keepme.txt",
            "/terrarium/web/x",
            "terrarium//x",
            "terrarium/./x",
            "terrarium/a\\..\\b",
            "terrarium/a\nb",
            "terrariumx/y",
            "",
        ];
        for k in bad {
            let e = check_key("terrarium/", k).unwrap_err();
            assert_eq!(e.exit_code(), 1, "{k}");
            assert!(e.to_string().contains("refusing S3 key"), "{k}: {e}");
        }
        // The bucket root as prefix still refuses traversal.
        assert!(check_key("", "keepme.txt").is_ok());
        assert!(check_key("", "../other/x").is_err());
    }

    #[test]
    fn a_scoped_client_refuses_before_sending() {
        let c = Client::new(&Target {
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "b".into(),
            region: "r".into(),
            access_key: "a".into(),
            secret_key: "s".into(),
        })
        .unwrap()
        .within("terrarium/");
        // Port 9 answers nothing: these fail on the key, never the network.
        for e in [
            c.delete("../other/x").unwrap_err(),
            c.get("keepme.txt").err().unwrap(),
            c.put("terrarium/../x", b"").unwrap_err(),
            c.abort_multipart("other/x", "id").unwrap_err(),
            c.list("").unwrap_err(),
        ] {
            assert!(e.to_string().contains("refusing"), "{e}");
        }
    }

    #[test]
    fn bad_endpoints_are_usage_errors() {
        let t = |e: &str| Target {
            endpoint: e.into(),
            bucket: "b".into(),
            region: "r".into(),
            access_key: "a".into(),
            secret_key: "s".into(),
        };
        assert_eq!(Client::new(&t("not a url")).err().unwrap().exit_code(), 2);
        assert_eq!(Client::new(&t("ftp://x")).err().unwrap().exit_code(), 2);
    }
}
