//! The API base URL: parsed with a real URL parser and refused, with what is
//! wrong and where it came from, unless it is a plain `http(s)://host[:port][/prefix]`.
//!
//! A query or a fragment would swallow or displace the endpoint paths
//! appended to the base, credentials in a URL would be logged and sent where
//! the key should go, and plain `http://` would carry the key unencrypted,
//! so each is refused (`http://` is allowed to loopback addresses only:
//! tests and a local contract server).

use std::fmt;
use std::net::IpAddr;

/// A usable API base URL, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    text: String,
    loopback: bool,
}

/// Why a base URL was refused. Each message names the URL (without any
/// password) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all (or a port above 65535).
    #[error("the Omi API URL `{url}` (from {from}) is not a valid URL: {reason}")]
    NotAUrl {
        /// The text given.
        url: String,
        /// Where it came from.
        from: String,
        /// What the parser said.
        reason: String,
    },
    /// Another scheme than http(s).
    #[error(
        "the Omi API URL `{url}` (from {from}) must start with https:// (it starts with {scheme}://)"
    )]
    Scheme {
        /// The text given.
        url: String,
        /// Where it came from.
        from: String,
        /// The scheme found.
        scheme: String,
    },
    /// A user name or password in the URL.
    #[error(
        "the Omi API URL `{url}` (from {from}) holds a user name or password: give the URL \
         alone; the API key goes in OMI_API_KEY or the keyring (omi-sync login)"
    )]
    Credentials {
        /// The URL with the credentials cut out.
        url: String,
        /// Where it came from.
        from: String,
    },
    /// A `?query` (the endpoint paths would land after it).
    #[error(
        "the Omi API URL `{url}` (from {from}) has a query (`?{query}`): give the base URL only, e.g. https://api.omi.me"
    )]
    Query {
        /// The text given.
        url: String,
        /// Where it came from.
        from: String,
        /// The query.
        query: String,
    },
    /// A `#fragment` (the endpoint paths would be dropped).
    #[error(
        "the Omi API URL `{url}` (from {from}) has a fragment (`#{fragment}`): give the base URL only, e.g. https://api.omi.me"
    )]
    Fragment {
        /// The text given.
        url: String,
        /// Where it came from.
        from: String,
        /// The fragment.
        fragment: String,
    },
    /// Port 0.
    #[error("the Omi API URL `{url}` (from {from}) names port 0: use a port from 1 to 65535")]
    PortZero {
        /// The text given.
        url: String,
        /// Where it came from.
        from: String,
    },
    /// `http://` to a host that is not loopback.
    #[error(
        "the Omi API URL `{url}` (from {from}) is plain http to a non-local host: the API key \
         would travel unencrypted; use https://"
    )]
    Insecure {
        /// The text given.
        url: String,
        /// Where it came from.
        from: String,
    },
}

impl BaseUrl {
    /// Parses `text`, which came `from` somewhere (for messages: `--api-url
    /// or OMI_API_URL`, `[cloud] api_url in FILE`). `allow_insecure` permits
    /// plain http to any host.
    pub fn parse(text: &str, from: &str, allow_insecure: bool) -> Result<BaseUrl, UrlError> {
        let given = text.trim();
        let from = from.to_string();
        let url = match url::Url::parse(given) {
            Ok(u) => u,
            Err(e) => {
                let reason = match e {
                    url::ParseError::InvalidPort => {
                        "the port must be a number from 1 to 65535".to_string()
                    }
                    url::ParseError::RelativeUrlWithoutBase => {
                        "it has no scheme (write https://HOST)".to_string()
                    }
                    other => other.to_string(),
                };
                return Err(UrlError::NotAUrl {
                    url: without_credentials(given),
                    from,
                    reason,
                });
            }
        };
        let shown = || without_credentials(given);
        let scheme = url.scheme().to_string();
        if scheme != "https" && scheme != "http" {
            return Err(UrlError::Scheme {
                url: shown(),
                from,
                scheme,
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials { url: shown(), from });
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(UrlError::NotAUrl {
                url: shown(),
                from,
                reason: "it has no host".into(),
            });
        };
        if let Some(query) = url.query() {
            return Err(UrlError::Query {
                url: shown(),
                from,
                query: query.to_string(),
            });
        }
        if let Some(fragment) = url.fragment() {
            return Err(UrlError::Fragment {
                url: shown(),
                from,
                fragment: fragment.to_string(),
            });
        }
        if url.port() == Some(0) {
            return Err(UrlError::PortZero { url: shown(), from });
        }
        let loopback = is_loopback(host);
        if scheme == "http" && !loopback && !allow_insecure {
            return Err(UrlError::Insecure { url: shown(), from });
        }
        let text = url.as_str().trim_end_matches('/').to_string();
        Ok(BaseUrl { text, loopback })
    }

    /// The URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The base followed by `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.text)
    }

    /// Whether the host is a loopback address (`localhost`, 127.0.0.0/8, ::1).
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The text with anything between `://` and an `@` in the authority cut out.
fn without_credentials(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://[credentials removed]@{}", &rest[at + 1..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(u: &str) -> Result<BaseUrl, UrlError> {
        BaseUrl::parse(u, "--api-url or OMI_API_URL", false)
    }

    #[test]
    fn good_urls_are_normalised() {
        assert_eq!(
            parse("https://api.omi.me/").unwrap().as_str(),
            "https://api.omi.me"
        );
        assert_eq!(
            parse(" https://proxy.example/omi/ ").unwrap().join("/v1/x"),
            "https://proxy.example/omi/v1/x"
        );
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            let b = parse(local).unwrap();
            assert!(b.is_loopback(), "{local}");
        }
        assert!(!parse("https://api.omi.me").unwrap().is_loopback());
        assert!(BaseUrl::parse("http://10.0.0.5", "x", true).is_ok());
    }

    #[test]
    fn each_bad_url_is_refused_with_what_and_where() {
        let cases: &[(&str, &str)] = &[
            ("https://api.omi.me/#frag", "fragment"),
            ("https://api.omi.me/?x=1", "query"),
            ("https://api.omi.me:70000", "1 to 65535"),
            ("https://api.omi.me:0", "port 0"),
            ("https://user:secretpw@api.omi.me", "user name or password"),
            ("ftp://api.omi.me", "https://"),
            ("api.omi.me", "no scheme"),
            ("http://api.omi.me", "unencrypted"),
            ("https://", "not a valid URL"),
        ];
        for (url, needle) in cases {
            let e = parse(url).expect_err(url).to_string();
            assert!(e.contains(needle), "{url}: {e}");
            assert!(e.contains("--api-url or OMI_API_URL"), "{url}: {e}");
            assert!(!e.contains("secretpw"), "{e}");
        }
    }
}
