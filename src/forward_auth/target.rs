//! The request a proxy asks about, as its headers describe it, brought to
//! one plain form before any rule sees it: a rule for `/admin` must not be
//! walked around by `/x/../admin`, `//admin` or `/%61dmin`.

use percent_encoding::percent_decode_str;

/// Why a forwarded path was refused rather than guessed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("does not start with /")]
    NotAbsolute,
    #[error(
        "holds an encoded slash, backslash, dot or percent sign, or a dot segment with a ';', which apps read in different ways"
    )]
    AmbiguousEncoding,
    #[error("holds a backslash, a control character or an invalid escape")]
    BadCharacter,
}

/// The plain form of a URL path: percent-decoded once, dot segments
/// resolved as RFC 3986 §5.2.4 and browsers do (an empty segment counts:
/// `/a//../b` is `/a/b`; `..` never climbs above the root), then runs of
/// slashes collapsed. A trailing slash is kept.
///
/// # Errors
/// `%2F`, `%5C`, `%2E`, `%25` and `%00` are refused: an app behind the
/// proxy may decode them again, or not, and so see another path than the
/// rules did. So are a dot segment with a `;` parameter (`..;`, which some
/// servers read as `..`), a backslash, control characters, invalid escapes
/// and bytes that are not UTF-8.
pub fn normalise_path(raw: &str) -> Result<String, PathProblem> {
    if !raw.starts_with('/') {
        return Err(PathProblem::NotAbsolute);
    }
    const AMBIGUOUS: [&str; 5] = ["%2f", "%5c", "%2e", "%25", "%00"];
    let lower = raw.to_ascii_lowercase();
    if AMBIGUOUS.iter().any(|escape| lower.contains(escape)) {
        return Err(PathProblem::AmbiguousEncoding);
    }
    if !valid_escapes(raw) {
        return Err(PathProblem::BadCharacter);
    }
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| PathProblem::BadCharacter)?;
    if decoded.contains('\\') || decoded.chars().any(char::is_control) {
        return Err(PathProblem::BadCharacter);
    }
    let pieces: Vec<&str> = decoded.split('/').skip(1).collect();
    if pieces.iter().any(|piece| matches!(piece.split(';').next(), Some("." | "..")) && piece.contains(';')) {
        return Err(PathProblem::AmbiguousEncoding);
    }
    let last = pieces.len().saturating_sub(1);
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for (index, piece) in pieces.iter().enumerate() {
        match *piece {
            "." => trailing_slash = index == last,
            ".." => {
                segments.pop();
                trailing_slash = index == last;
            }
            segment => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let kept: Vec<&str> = segments.into_iter().filter(|segment| !segment.is_empty()).collect();
    let ends_in_slash = trailing_slash || decoded.ends_with('/');
    let mut path = format!("/{}", kept.join("/"));
    if ends_in_slash && !kept.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// The path as an app that resolves no dot segments reads it: decoded
/// once, runs of slashes collapsed. `None` when it holds no dot segment
/// (then it is `normalise_path`'s). A request whose two readings fall
/// under different rules is refused (`routes::forward_auth`).
pub fn literal_path(raw: &str) -> Option<String> {
    let decoded = percent_decode_str(raw.split('?').next().unwrap_or(raw)).decode_utf8().ok()?;
    let pieces: Vec<&str> = decoded.split('/').filter(|piece| !piece.is_empty()).collect();
    if !pieces.iter().any(|piece| *piece == "." || *piece == "..") {
        return None;
    }
    Some(format!("/{}", pieces.join("/")))
}

/// Whether every `%` starts a two-digit hexadecimal escape.
fn valid_escapes(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    bytes.iter().enumerate().all(|(i, &byte)| {
        byte != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Whether `host` is `domain` or a name below it at a dot boundary
/// (`a.example.com` is within `example.com`; `badexample.com` is not).
/// Both in lower case, without a trailing dot.
pub fn within_domain(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain).is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// A host name as rules compare it: lower case, without a port or a
/// trailing dot. `None` for an empty or malformed one.
pub fn normalise_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let port_ok = |port: &str| !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit());
    let name = if let Some(bracketed) = raw.strip_prefix('[') {
        // An IPv6 literal, maybe with a port after the bracket.
        let (address, rest) = bracketed.split_once(']')?;
        let valid = address.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        let port_valid = rest.is_empty() || rest.strip_prefix(':').is_some_and(port_ok);
        return (valid && port_valid).then(|| format!("[{}]", address.to_ascii_lowercase()));
    } else {
        match raw.split_once(':') {
            Some((name, port)) if port_ok(port) => name,
            Some(_) => return None,
            None => raw,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_brought_to_one_plain_form() {
        let cases = [
            ("/", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("//admin", "/admin"),
            ("/x//admin///users", "/x/admin/users"),
            ("/x/../admin", "/admin"),
            ("/./admin/.", "/admin/"),
            ("/../../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/a%20b", "/a b"),
            ("/caf%C3%A9", "/café"),
            ("/admin/..", "/"),
            ("/admin/x/..", "/admin/"),
            // An empty segment is one: `..` removes it, not `admin`.
            ("/admin//../public/x", "/admin/public/x"),
            ("/a/b//..", "/a/b/"),
        ];
        for (raw, plain) in cases {
            assert_eq!(normalise_path(raw).as_deref(), Ok(plain), "{raw:?}");
        }
    }

    #[test]
    fn ambiguous_or_broken_paths_are_refused() {
        for raw in [
            "/x%2Fadmin",
            "/x%2fadmin",
            "/%5Cadmin",
            "/%2e%2e/admin",
            "/%2E/admin",
            "/a%252Fb",
            "/a%00",
            "/public/..;/admin",
            "/public/.;x/admin",
        ] {
            assert_eq!(normalise_path(raw), Err(PathProblem::AmbiguousEncoding), "{raw:?}");
        }
        for raw in ["/a\\b", "/a%zz", "/a%4", "/%ff", "/a%0a"] {
            assert_eq!(normalise_path(raw), Err(PathProblem::BadCharacter), "{raw:?}");
        }
        assert_eq!(normalise_path("admin"), Err(PathProblem::NotAbsolute));
        assert_eq!(normalise_path(""), Err(PathProblem::NotAbsolute));
    }

    #[test]
    fn the_literal_reading_is_given_only_for_dot_segments() {
        assert_eq!(literal_path("/public/../admin").as_deref(), Some("/public/../admin"));
        assert_eq!(literal_path("//x/./y?q=/../").as_deref(), Some("/x/./y"));
        assert_eq!(literal_path("/admin//x"), None);
        assert_eq!(literal_path("/a..b/.c"), None);
    }

    #[test]
    fn hosts_lose_case_port_and_trailing_dot() {
        assert_eq!(normalise_host("Wiki.Example.COM").as_deref(), Some("wiki.example.com"));
        assert_eq!(normalise_host("wiki.example.com.:8443").as_deref(), Some("wiki.example.com"));
        assert_eq!(normalise_host("[::1]:8080").as_deref(), Some("[::1]"));
        for bad in ["", ":80", "a..b", "a b", "a/b", ".", "a:b", "a:80:80", "[::1]x", "[::1]:x"] {
            assert_eq!(normalise_host(bad), None, "{bad:?}");
        }
    }
}

/// The request a proxy asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginalRequest {
    /// `GET`, `POST`, … as forwarded (upper case).
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The `Host` as the browser sent it (with its port), for links back.
    pub authority: String,
    /// The host rules compare (`normalise_host`).
    pub host: String,
    /// The plain form of the path (`normalise_path`), which rules compare;
    /// why it has none, when it may not be judged. Rules that ignore the
    /// path (a host-wide rule) still decide such a request.
    pub path: Result<String, PathProblem>,
    /// The path read without resolving dot segments (`literal_path`), if it has any.
    pub literal_path: Option<String>,
    /// The path and query as the browser sent them, for links back.
    pub path_and_query: String,
}

/// Why the forwarded headers name no request Usher can judge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetProblem {
    #[error("the proxy sent no {0} header")]
    Missing(&'static str),
    #[error("the {0} header is not valid")]
    Invalid(&'static str),
    #[error("its path {0}")]
    Path(#[from] PathProblem),
}

impl OriginalRequest {
    /// The request's URL, as the browser asked for it.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path_and_query)
    }

    /// From the `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri` headers
    /// that Caddy's `forward_auth` and Traefik's `forwardAuth` send
    /// (`header` reads one header's value). A missing method means `GET`.
    ///
    /// # Errors
    /// A header missing or malformed, or a path refused by `normalise_path`.
    pub fn from_forwarded<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Result<Self, TargetProblem> {
        let scheme = header("x-forwarded-proto").ok_or(TargetProblem::Missing("X-Forwarded-Proto"))?;
        let authority = header("x-forwarded-host").ok_or(TargetProblem::Missing("X-Forwarded-Host"))?;
        let uri = header("x-forwarded-uri").ok_or(TargetProblem::Missing("X-Forwarded-Uri"))?;
        let method = header("x-forwarded-method").unwrap_or("GET");
        Self::from_parts(method, scheme, authority, uri, "X-Forwarded-Method", "X-Forwarded-Proto", "X-Forwarded-Host")
    }

    /// From nginx's `X-Original-URL` (an absolute URL) and
    /// `X-Original-Method`; without `X-Original-URL`, from the
    /// `X-Forwarded-*` set as `from_forwarded`.
    ///
    /// # Errors
    /// As `from_forwarded`.
    pub fn from_original_url<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Result<Self, TargetProblem> {
        let Some(url) = header("x-original-url") else { return Self::from_forwarded(header) };
        let method = header("x-original-method").or_else(|| header("x-forwarded-method")).unwrap_or("GET");
        let invalid = TargetProblem::Invalid("X-Original-URL");
        let (scheme, rest) = url.split_once("://").ok_or(invalid.clone())?;
        let (authority, path_and_query) = match rest.find(['/', '?', '#']) {
            Some(at) if rest[at..].starts_with('/') => rest.split_at(at),
            Some(_) => return Err(invalid),
            None => (rest, "/"),
        };
        Self::from_parts(
            method,
            scheme,
            authority,
            path_and_query,
            "X-Original-Method",
            "X-Original-URL",
            "X-Original-URL",
        )
    }

    fn from_parts(
        method: &str,
        scheme: &str,
        authority: &str,
        path_and_query: &str,
        method_header: &'static str,
        scheme_header: &'static str,
        host_header: &'static str,
    ) -> Result<Self, TargetProblem> {
        let method = method.trim().to_ascii_uppercase();
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(TargetProblem::Invalid(method_header));
        }
        let scheme = scheme.trim().to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(TargetProblem::Invalid(scheme_header));
        }
        let authority = authority.trim();
        // `user@host` or a list of hosts is no single host to judge.
        if authority.contains(['@', ',', ' ', '/', '\\']) {
            return Err(TargetProblem::Invalid(host_header));
        }
        let host = normalise_host(authority).ok_or(TargetProblem::Invalid(host_header))?;
        if path_and_query.contains('#') || path_and_query.chars().any(|c| c.is_control() || c == ' ') {
            return Err(PathProblem::BadCharacter.into());
        }
        let raw_path = path_and_query.split_once('?').map_or(path_and_query, |(path, _query)| path);
        let path = normalise_path(raw_path);
        Ok(Self {
            method,
            scheme,
            authority: authority.to_owned(),
            host,
            path,
            literal_path: literal_path(raw_path),
            path_and_query: path_and_query.to_owned(),
        })
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| *value)
    }

    #[test]
    fn caddy_and_traefik_headers_describe_the_request() {
        let sent = [
            ("x-forwarded-method", "post"),
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "Wiki.Example.com:8443"),
            ("x-forwarded-uri", "/x/../admin?a=1"),
        ];
        let request = OriginalRequest::from_forwarded(headers(&sent)).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.host, "wiki.example.com");
        assert_eq!(request.path.as_deref(), Ok("/admin"));
        assert_eq!(request.url(), "https://Wiki.Example.com:8443/x/../admin?a=1");
        let missing = OriginalRequest::from_forwarded(headers(&sent[..3]));
        assert_eq!(missing, Err(TargetProblem::Missing("X-Forwarded-Uri")));
    }

    #[test]
    fn nginx_sends_one_url() {
        let sent = [("x-original-url", "http://wiki.example.com/%61dmin/?q=%2F"), ("x-original-method", "GET")];
        let request = OriginalRequest::from_original_url(headers(&sent)).unwrap();
        assert_eq!((request.host.as_str(), request.path.as_deref()), ("wiki.example.com", Ok("/admin/")));
        let bare = [("x-original-url", "https://wiki.example.com")];
        assert_eq!(OriginalRequest::from_original_url(headers(&bare)).unwrap().path.as_deref(), Ok("/"));
        let encoded = [("x-original-url", "https://wiki.example.com/a%2Fb")];
        let encoded = OriginalRequest::from_original_url(headers(&encoded)).unwrap();
        assert_eq!(encoded.path, Err(PathProblem::AmbiguousEncoding));
        for bad in [
            "wiki.example.com/admin",
            "ftp://wiki.example.com/",
            "https://evil.test@wiki.example.com/",
            "https://wiki.example.com?x",
            "https://wiki.example.com/a#b",
            "https://wiki.example.com/a b",
        ] {
            assert!(OriginalRequest::from_original_url(headers(&[("x-original-url", bad)])).is_err(), "{bad:?}");
        }
    }
}
