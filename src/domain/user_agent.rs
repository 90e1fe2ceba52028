//! Browsers named as people name them.

/// "Firefox on Linux", "Chrome on Android", from a `User-Agent` header
/// (parsed by the maintained `woothee` rules); "an unknown browser" when it
/// says nothing recognisable.
pub fn describe_browser(user_agent: &str) -> String {
    let known = |value: &str| !value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN;
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(found) if known(found.name) && known(found.os) => format!("{} on {}", found.name, found.os),
        Some(found) if known(found.name) => found.name.to_owned(),
        _ => "an unknown browser".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::describe_browser;

    #[test]
    fn common_browsers_read_as_people_say_them() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let chrome_android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \\
                              Chrome/126.0.0.0 Mobile Safari/537.36";
        assert_eq!(describe_browser(firefox), "Firefox on Linux");
        assert_eq!(describe_browser(chrome_android), "Chrome on Android");
        assert_eq!(describe_browser(""), "an unknown browser");
        assert_eq!(describe_browser("usher-tests/1.0"), "an unknown browser");
    }
}
