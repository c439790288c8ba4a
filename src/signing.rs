//! The clouds' request signatures and derived keys, pure (no I/O, no clock of its own: the
//! caller passes the time): Huawei Cloud's APIG `SDK-HMAC-SHA256` (the canonical request
//! as `huaweicloudsdkcore`'s `Signer` builds it) and SWR's long-term login key
//! `hex(HMAC-SHA256(key = SK, message = AK))`, and AWS's SigV4 (by `aws-sigv4`). Secrets go in as `&str` and only signatures
//! come out.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// SHA-256 of the empty payload, as the SDK writes it.
const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// SWR's long-term login key for an access key: `hex(HMAC-SHA256(key = SK, message = AK))`,
/// the password of the console's "long-term login command" (user `<region>@<AK>`).
pub fn swr_login_key(ak: &str, sk: &str) -> String {
    hex::encode(hmac_sha256(sk.as_bytes(), ak.as_bytes()))
}

/// One request to sign with APIG's `SDK-HMAC-SHA256`.
pub struct ApigRequest<'a> {
    pub method: &'a str,
    /// The path, as sent (percent-encoded or not: it is decoded then encoded again).
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, &'a str)],
    /// The headers to sign (`Host`, `X-Sdk-Date` and `Content-Type` at least), as sent.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// `X-Sdk-Date`'s form of a time: `20191115T033655Z` (UTC).
pub fn sdk_date(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// RFC 3986 encoding as Python's `quote(s, safe='~')`: letters, digits and `_.-~` kept.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding as Python's `unquote` (a stray `%` stays).
fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII");
            out.push(u8::from_str_radix(digits, 16).expect("hex digits"));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical request, as `Signer._process_canonical_request` builds it; and the signed
/// header names, `;`-joined.
pub fn apig_canonical_request(request: &ApigRequest<'_>) -> (String, String) {
    let mut uri = unquote(request.path)
        .split('/')
        .map(quote)
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    let mut query: Vec<(&str, &str)> = request.query.to_vec();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, &str)> = request
        .headers
        .iter()
        .filter(|(name, _)| !name.contains('_'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let signed = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let payload = if request.body.is_empty() {
        EMPTY_HASH.to_string()
    } else {
        hex::encode(Sha256::digest(request.body))
    };
    (
        format!(
            "{}\n{uri}\n{query}\n{canonical_headers}\n{signed}\n{payload}",
            request.method.to_ascii_uppercase()
        ),
        signed,
    )
}

/// The `Authorization` value of a request signed with `SDK-HMAC-SHA256`; `date` is the
/// request's `X-Sdk-Date` (which must be among the signed headers).
pub fn apig_authorization(request: &ApigRequest<'_>, date: &str, ak: &str, sk: &str) -> String {
    let (canonical, signed) = apig_canonical_request(request);
    let string_to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let signature = hex::encode(hmac_sha256(sk.as_bytes(), string_to_sign.as_bytes()));
    format!("SDK-HMAC-SHA256 Access={ak}, SignedHeaders={signed}, Signature={signature}")
}

/// AWS's SigV4 key, as `&str` (the caller keeps the secrets).
pub struct AwsKey<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// One AWS request to sign with SigV4 (by AWS's own `aws-sigv4`).
pub struct AwsRequest<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// The headers sent, lower case; all are signed.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub region: &'a str,
    pub service: &'a str,
    pub time: std::time::SystemTime,
}

/// The headers SigV4 adds (`authorization`, `x-amz-date`, `x-amz-security-token`…), lower
/// case. An error says why it could not sign, never with a secret.
pub fn sigv4_headers(
    key: &AwsKey<'_>,
    request: &AwsRequest<'_>,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = aws_credential_types::Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_string),
        None,
        "environment",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name(request.service)
        .time(request.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests signed by Huawei's own Python SDK (`huaweicloudsdkcore`'s `Signer`), made by
    /// `tests/fixtures/signing/make_apig_vectors.py`.
    #[test]
    fn apig_signatures_match_huaweis_sdk() {
        #[derive(serde::Deserialize)]
        struct Vector {
            name: String,
            ak: String,
            sk: String,
            method: String,
            path: String,
            query: Vec<(String, String)>,
            headers: Vec<(String, String)>,
            body: String,
            authorization: String,
        }
        let vectors: Vec<Vector> =
            serde_json::from_str(include_str!("../tests/fixtures/signing/apig_vectors.json"))
                .unwrap();
        assert!(vectors.len() >= 4);
        for v in &vectors {
            let query: Vec<(&str, &str)> = v
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let headers: Vec<(&str, &str)> = v
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let date = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-sdk-date"))
                .unwrap()
                .1;
            let request = ApigRequest {
                method: &v.method,
                path: &v.path,
                query: &query,
                headers: &headers,
                body: v.body.as_bytes(),
            };
            assert_eq!(
                apig_authorization(&request, date, &v.ak, &v.sk),
                v.authorization,
                "{}",
                v.name
            );
        }
    }

    #[test]
    fn swr_login_key_is_hmac_of_the_ak_keyed_by_the_sk() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            swr_login_key("what do ya want for nothing?", "Jefe"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sdk_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(sdk_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            sdk_date(UNIX_EPOCH + Duration::from_secs(1_573_788_615)),
            "20191115T033015Z"
        );
        assert_eq!(
            sdk_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
    }

    #[test]
    fn paths_are_decoded_then_encoded_with_a_trailing_slash() {
        let request = ApigRequest {
            method: "get",
            path: "/v2/manage/namespaces/a%20b",
            query: &[("b", "2"), ("a", "x y")],
            headers: &[("Host", "h"), ("X-Sdk-Date", "d"), ("x_skip", "1")],
            body: b"",
        };
        let (canonical, signed) = apig_canonical_request(&request);
        assert_eq!(signed, "host;x-sdk-date");
        assert!(
            canonical.starts_with("GET\n/v2/manage/namespaces/a%20b/\na=x%20y&b=2\nhost:h\n"),
            "{canonical}"
        );
    }
}
