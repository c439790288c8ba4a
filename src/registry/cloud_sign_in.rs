//! The registry client signs in to clouds for `credentials`: ECR's password of user `AWS`
//! from `GetAuthorizationToken` (JSON 1.1, SigV4 with `AWS_*`); its answer's
//! `authorizationData[0].authorizationToken` is base64 of `AWS:<password>`. Neither the
//! token nor the password is ever in an error.

use base64::Engine as _;

use super::Client;
use crate::credentials::{CloudSignIn, EcrSignIn, Secret};
use crate::error::{Error, ErrorKind, Result, StatusClass};
use crate::http::{Body, Exchange, Method, RequestStats, bounds};
use crate::signing::{AwsKey, AwsRequest, sigv4_headers};

const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

impl CloudSignIn for Client {
    fn ecr_password(&self, ask: &EcrSignIn<'_>) -> Result<Secret> {
        let url = format!("{}/", ask.api);
        let what = format!(
            "{}: ECR sign-in: POST {} (GetAuthorizationToken)",
            ask.registry, url
        );
        let stats = RequestStats::default();
        let (status, body) = self.transport.retrying(&stats, || {
            let headers = signed_headers(ask, &url, &what)?;
            let response = self.transport.send(
                Method::Post,
                &url,
                &headers,
                Body::Bytes(b"{}"),
                Exchange::whole(ask.insecure),
                &stats,
            )?;
            let status = response.status;
            if StatusClass::of(status) == StatusClass::Transient {
                return Err(response.describe_error(&what));
            }
            let body = response.read_bounded(bounds::MAX_TAG_PAGE_BYTES, &what)?;
            Ok((status, body))
        })?;
        if status != 200 {
            return Err(refusal(&what, status, &body));
        }
        password(&body).ok_or_else(|| {
            Error::protocol(format!(
                "{what}: the answer has no authorizationData[0].authorizationToken of the form \
                 base64(AWS:<password>)"
            ))
        })
    }
}

/// The request's headers with SigV4's, signed now.
fn signed_headers(
    ask: &EcrSignIn<'_>,
    url: &str,
    what: &str,
) -> Result<Vec<(&'static str, String)>> {
    let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
    let key = AwsKey {
        access_key_id: ask.keys.access_key_id.expose(),
        secret_access_key: ask.keys.secret_access_key.expose(),
        session_token: ask.keys.session_token.as_ref().map(Secret::expose),
    };
    let request = AwsRequest {
        method: "POST",
        url,
        headers: &headers,
        body: b"{}",
        region: ask.region,
        service: "ecr",
        time: std::time::SystemTime::now(),
    };
    let signed = sigv4_headers(&key, &request)
        .map_err(|e| Error::protocol(format!("{what}: cannot sign the request: {e}")))?;
    let mut out: Vec<(&'static str, String)> =
        headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
    for (name, value) in signed {
        let name: &'static str = match name.as_str() {
            "authorization" => "authorization",
            "x-amz-date" => "x-amz-date",
            "x-amz-security-token" => "x-amz-security-token",
            "x-amz-content-sha256" => "x-amz-content-sha256",
            _ => continue,
        };
        out.push((name, value));
    }
    Ok(out)
}

/// The password inside the answer's token.
fn password(body: &[u8]) -> Option<Secret> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let token = answer["authorizationData"][0]["authorizationToken"].as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let password = decoded.strip_prefix("AWS:")?;
    (!password.is_empty()).then(|| Secret::new(password.to_string()))
}

/// A refusal as an error naming AWS's error type and what it means.
fn refusal(what: &str, status: u16, body: &[u8]) -> Error {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let kind = answer["__type"]
        .as_str()
        .map(|t| t.rsplit('#').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let hint = match kind.as_str() {
        "AccessDeniedException" => {
            " (the IAM identity of AWS_ACCESS_KEY_ID needs the \"ecr:GetAuthorizationToken\" \
             permission)"
        }
        "InvalidSignatureException" | "UnrecognizedClientException" => {
            " (AWS did not accept the signature: check AWS_ACCESS_KEY_ID, \
             AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and the machine's clock)"
        }
        _ => "",
    };
    let said = if kind.is_empty() {
        String::new()
    } else {
        format!(": {}", bounds::escaped(&kind, 100))
    };
    let mut error =
        Error::from_status(status, format!("{what} answered HTTP {status}{said}{hint}"));
    error.kind = ErrorKind::Auth;
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_what_follows_aws_in_the_token() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:pw:with:colons");
        let body = format!(r#"{{"authorizationData":[{{"authorizationToken":"{token}"}}]}}"#);
        assert_eq!(
            password(body.as_bytes()).unwrap().expose(),
            "pw:with:colons"
        );
        let other = base64::engine::general_purpose::STANDARD.encode("root:pw");
        let body = format!(r#"{{"authorizationData":[{{"authorizationToken":"{other}"}}]}}"#);
        assert!(password(body.as_bytes()).is_none());
        assert!(password(b"{}").is_none());
    }
}
