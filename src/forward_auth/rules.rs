//! The access rules file (`USHER_ACCESS_RULES`): which requests to guarded
//! apps pass without a sign-in, which need one, and which need a group.
//!
//! ```toml
//! [[rule]]
//! host = "wiki.example.com"      # or "*.example.com"
//! path = "/admin"                # optional prefix, matched at segment boundaries
//! policy = "groups"              # "bypass" | "signed_in" | "groups"
//! groups = ["staff"]
//! ```
//!
//! Rules are tried in order; the first whose host and path match decides.
//! A request no rule matches is denied.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::target::{OriginalRequest, TargetProblem, normalise_host, normalise_path, within_domain};
use crate::domain::GroupName;

/// What a matching rule asks of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Anyone, signed in or not; no identity is sent.
    Bypass,
    /// Any account that may sign in.
    SignedIn,
    /// An account in at least one of these groups.
    Groups(Vec<GroupName>),
}

/// Which hosts a rule covers: one name, or every name below a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`: any host ending in `.example.com`, not the domain itself.
    Below(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host == name,
            Self::Below(domain) => host != domain && within_domain(host, domain),
        }
    }
}

impl HostPattern {
    /// Whether every host `other` matches, this matches too.
    fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (Self::Exact(name), Self::Exact(other)) => name == other,
            (Self::Below(domain), Self::Exact(name)) => self.matches(name) && name != domain,
            (Self::Below(domain), Self::Below(other)) => within_domain(other, domain),
            (Self::Exact(_), Self::Below(_)) => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Below(domain) => write!(f, "*.{domain}"),
        }
    }
}

/// One checked rule, with the line of the file it starts on.
#[derive(Clone, Debug)]
pub struct Rule {
    pub line: usize,
    pub host: HostPattern,
    /// A normalised path prefix without a trailing slash; `None` covers every path.
    pub path: Option<String>,
    pub policy: Policy,
}

impl Rule {
    /// Whether this rule, tried first, decides every request `later` covers.
    fn shadows(&self, later: &Rule) -> bool {
        let paths = match (&self.path, &later.path) {
            _ if self.covers_path_of_any() => true,
            (Some(prefix), Some(other)) => self.covers_path(other) && other.starts_with(prefix.as_str()),
            _ => false,
        };
        self.host.covers(&later.host) && paths
    }

    /// Whether this rule covers every path.
    fn covers_path_of_any(&self) -> bool {
        matches!(self.path.as_deref(), None | Some("/"))
    }

    /// Whether `path` (normalised) is `prefix` or lies below it: `/admin`
    /// covers `/admin` and `/admin/x`, never `/administrator`.
    fn covers_path(&self, path: &str) -> bool {
        match &self.path {
            None => true,
            Some(prefix) if prefix == "/" => true,
            Some(prefix) => {
                path.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// The rules, in the order they are tried.
#[derive(Clone, Debug, Default)]
pub struct AccessRules {
    pub rules: Vec<Rule>,
}

/// Why one rule did or did not decide a request (`AccessRules::explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleVerdict {
    OtherHost,
    OutsidePath,
    Matches,
}

impl AccessRules {
    /// Reads and checks the rules file.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or holds a rule that is not
    /// valid; the message names the file and the line.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("USHER_ACCESS_RULES: cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("USHER_ACCESS_RULES: {}: {e}", path.display()))
    }

    /// Parses the rules from TOML text.
    ///
    /// # Errors
    /// A message naming the line: TOML syntax, an unknown key, a rule whose
    /// host, path, policy or groups is not valid, or a rule never used
    /// because an earlier one decides every request it covers.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: RulesFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let rules: Vec<Rule> = file
            .rule
            .into_iter()
            .map(|spanned| {
                let line = line_of(text, spanned.span().start);
                check_rule(spanned.into_inner(), line).map_err(|problem| format!("line {line}: {problem}"))
            })
            .collect::<Result<_, _>>()?;
        for (index, rule) in rules.iter().enumerate() {
            if let Some(earlier) = rules[..index].iter().find(|earlier| earlier.shadows(rule)) {
                return Err(format!(
                    "line {}: this rule is never used: the rule on line {} comes first and covers every request it would",
                    rule.line, earlier.line
                ));
            }
        }
        Ok(Self { rules })
    }

    /// The first rule covering `host` (normalised) and `path` (normalised).
    pub fn find(&self, host: &str, path: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.host.matches(host) && rule.covers_path(path))
    }

    /// The rule that decides `request` (`None`: no rule, so deny).
    ///
    /// # Errors
    /// Why the request cannot be judged, in words: a path `normalise_path`
    /// refused, where the path matters; or dot segments whose literal
    /// reading (`literal_path`) falls under another rule than the resolved
    /// one, since apps differ on which they serve.
    pub fn rule_for(&self, request: &OriginalRequest) -> Result<Option<&Rule>, String> {
        let rule = match &request.path {
            Ok(path) => self.find(&request.host, path),
            // A path that cannot be judged still passes a rule that ignores paths.
            Err(_) if !self.path_matters(&request.host) => self.find(&request.host, "/"),
            Err(problem) => return Err(TargetProblem::Path(*problem).to_string()),
        };
        if let Some(literal) = &request.literal_path {
            let other = self.find(&request.host, literal);
            if rule.map(|rule| rule.line) != other.map(|rule| rule.line) {
                return Err("its dot segments lead under another rule than the path they resolve to".to_owned());
            }
        }
        Ok(rule)
    }

    /// Whether the path can change which rule decides for `host`: false
    /// when the first rule for the host covers every path (or none does).
    pub fn path_matters(&self, host: &str) -> bool {
        let first = self.rules.iter().find(|rule| rule.host.matches(host));
        first.is_some_and(|rule| !rule.covers_path_of_any())
    }

    /// Each rule tried for `host` and `path` up to the one that decides,
    /// with why it did or did not match: for `usher check-rules`.
    pub fn explain(&self, host: &str, path: &str) -> Vec<(&Rule, RuleVerdict)> {
        let mut tried = Vec::new();
        for rule in &self.rules {
            let verdict = if !rule.host.matches(host) {
                RuleVerdict::OtherHost
            } else if !rule.covers_path(path) {
                RuleVerdict::OutsidePath
            } else {
                RuleVerdict::Matches
            };
            let decided = verdict == RuleVerdict::Matches;
            tried.push((rule, verdict));
            if decided {
                break;
            }
        }
        tried
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    host: String,
    path: Option<String>,
    policy: RawPolicy,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawPolicy {
    Bypass,
    SignedIn,
    Groups,
}

fn check_rule(raw: RawRule, line: usize) -> Result<Rule, String> {
    let host = check_host(&raw.host)?;
    let path = match raw.path.as_deref() {
        None => None,
        Some(path) => Some(check_path(path)?),
    };
    let policy = match (raw.policy, raw.groups) {
        (RawPolicy::Groups, Some(groups)) if !groups.is_empty() => Policy::Groups(
            groups
                .iter()
                .map(|name| GroupName::parse(name).map_err(|problem| format!("group {name:?}: {problem}")))
                .collect::<Result<_, _>>()?,
        ),
        (RawPolicy::Groups, _) => {
            return Err("policy \"groups\" needs a list of groups, e.g. groups = [\"staff\"]".into());
        }
        (_, Some(_)) => return Err("groups = [...] goes only with policy = \"groups\"".into()),
        (RawPolicy::Bypass, None) => Policy::Bypass,
        (RawPolicy::SignedIn, None) => Policy::SignedIn,
    };
    Ok(Rule { line, host, path, policy })
}

fn check_host(host: &str) -> Result<HostPattern, String> {
    let (below, name) = match host.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, host),
    };
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    if !valid || name.contains(':') {
        return Err(format!(
            "host {host:?} is not a host name; write one like \"wiki.example.com\" or \"*.example.com\", without a port"
        ));
    }
    let name = normalise_host(name).ok_or_else(|| format!("host {host:?} is not a host name"))?;
    Ok(if below { HostPattern::Below(name) } else { HostPattern::Exact(name) })
}

fn check_path(path: &str) -> Result<String, String> {
    if path.contains(['?', '#']) {
        return Err(format!("path {path:?}: a rule's path is a path alone, without ? or #"));
    }
    let normalised = normalise_path(path).map_err(|problem| format!("path {path:?}: {problem}"))?;
    let prefix = match normalised.trim_end_matches('/') {
        "" => "/",
        prefix => prefix,
    };
    if prefix != path.trim_end_matches('/') && !(prefix == "/" && path == "/") {
        return Err(format!("path {path:?} is not in plain form; write {prefix:?}"));
    }
    Ok(prefix.to_owned())
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A TOML error in one line: where, and what.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end_matches('.');
    match error.span() {
        Some(span) => format!("line {}: {message}", line_of(text, span.start)),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[rule]]
host = "wiki.example.com"
path = "/public"
policy = "bypass"

[[rule]]
host = "wiki.example.com"
path = "/admin"
policy = "groups"
groups = ["staff", "ops"]

[[rule]]
host = "*.example.com"
policy = "signed_in"
"#;

    fn policy_for(rules: &AccessRules, host: &str, path: &str) -> Option<Policy> {
        rules.find(host, path).map(|rule| rule.policy.clone())
    }

    #[test]
    fn the_first_matching_rule_decides_and_no_match_is_none() {
        let rules = AccessRules::parse(EXAMPLE).unwrap();
        assert_eq!(rules.rules.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 7, 13]);
        assert_eq!(policy_for(&rules, "wiki.example.com", "/public/a.css"), Some(Policy::Bypass));
        assert_eq!(policy_for(&rules, "wiki.example.com", "/public"), Some(Policy::Bypass));
        let staff = Policy::Groups(vec![GroupName::parse("staff").unwrap(), GroupName::parse("ops").unwrap()]);
        assert_eq!(policy_for(&rules, "wiki.example.com", "/admin"), Some(staff.clone()));
        assert_eq!(policy_for(&rules, "wiki.example.com", "/admin/users"), Some(staff));
        // A prefix matches only at a segment boundary.
        assert_eq!(policy_for(&rules, "wiki.example.com", "/administrator"), Some(Policy::SignedIn));
        assert_eq!(policy_for(&rules, "wiki.example.com", "/publication"), Some(Policy::SignedIn));
        assert_eq!(policy_for(&rules, "a.b.example.com", "/"), Some(Policy::SignedIn));
        // `*.example.com` covers names below the domain, not the domain or look-alikes.
        assert_eq!(policy_for(&rules, "example.com", "/"), None);
        assert_eq!(policy_for(&rules, "badexample.com", "/"), None);
        assert_eq!(policy_for(&rules, "example.com.evil.test", "/"), None);
        assert_eq!(policy_for(&rules, "evil.test", "/"), None);
    }

    #[test]
    fn explain_names_why_each_rule_was_passed_over() {
        let rules = AccessRules::parse(EXAMPLE).unwrap();
        let tried: Vec<RuleVerdict> =
            rules.explain("wiki.example.com", "/admin2").into_iter().map(|(_, v)| v).collect();
        assert_eq!(tried, [RuleVerdict::OutsidePath, RuleVerdict::OutsidePath, RuleVerdict::Matches]);
        let tried: Vec<RuleVerdict> = rules.explain("other.test", "/").into_iter().map(|(_, v)| v).collect();
        assert_eq!(tried, [RuleVerdict::OtherHost; 3]);
    }

    #[test]
    fn errors_name_the_line_and_say_what_is_wrong() {
        let cases = [
            ("[[rule]]\nhost = \"a.test\"\npolicy = \"groups\"\n", "line 1: policy \"groups\" needs a list"),
            ("[[rule]]\nhost = \"a.test\"\npolicy = \"everyone\"\n", "line 3:"),
            ("[[rule]]\nhost = \"a.test\"\npolicy = \"bypass\"\ncolour = 1\n", "line 4:"),
            ("\n\n[[rule]]\nhost = \"a.test:8080\"\npolicy = \"bypass\"\n", "line 3: host \"a.test:8080\""),
            ("[[rule]]\nhost = \"a.test\"\npath = \"admin\"\npolicy = \"bypass\"\n", "line 1: path \"admin\""),
            ("[[rule]]\nhost = \"a.test\"\npath = \"/a/../b\"\npolicy = \"bypass\"\n", "write \"/b\""),
            ("[[rule]]\nhost = \"a.test\"\npolicy = \"groups\"\ngroups = [\"Staff\"]\n", "group \"Staff\""),
            ("[[rule]]\nhost = \"a.test\"\npolicy = \"bypass\"\ngroups = [\"staff\"]\n", "only with policy"),
            ("[[rule]\n", "line 1:"),
            ("[[rule]]\nhost = \"a.test\"\npath = \"/a?b\"\npolicy = \"bypass\"\n", "without ? or #"),
        ];
        for (text, expected) in cases {
            let error = AccessRules::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?} gave {error:?}");
        }
    }

    #[test]
    fn a_request_is_judged_by_one_rule_or_refused() {
        let rules = AccessRules::parse(EXAMPLE).unwrap();
        let line = |url: &str| {
            let header = |name: &str| (name == "x-original-url").then_some(url);
            let request = OriginalRequest::from_original_url(header).unwrap();
            rules.rule_for(&request).map(|rule| rule.map(|rule| rule.line))
        };
        assert_eq!(line("https://wiki.example.com/admin//../public/x"), Ok(Some(7)), "an empty segment counts");
        assert_eq!(line("https://wiki.example.com/admin/x/../y"), Ok(Some(7)), "both readings under /admin");
        assert!(line("https://wiki.example.com/public/../admin").unwrap_err().contains("dot segments"));
        assert!(line("https://wiki.example.com/admin%2Fx").unwrap_err().contains("encoded slash"));
        // Under a rule for every path, the path cannot change the verdict.
        assert_eq!(line("https://blog.example.com/AC%2FDC"), Ok(Some(13)));
        assert_eq!(line("https://other.test/%2F"), Ok(None));
    }

    #[test]
    fn a_rule_an_earlier_one_covers_is_refused_as_never_used() {
        let rule = |host: &str, path: Option<&str>| {
            let path = path.map(|path| format!("path = \"{path}\"\n")).unwrap_or_default();
            format!("[[rule]]\nhost = \"{host}\"\n{path}policy = \"signed_in\"\n\n")
        };
        let shadowed = [
            (rule("*.example.com", None), rule("wiki.example.com", Some("/admin"))),
            (rule("*.example.com", None), rule("*.a.example.com", None)),
            (rule("wiki.example.com", Some("/")), rule("wiki.example.com", Some("/x"))),
            (rule("wiki.example.com", Some("/admin")), rule("wiki.example.com", Some("/admin/x"))),
            (rule("wiki.example.com", None), rule("wiki.example.com", None)),
        ];
        for (first, second) in shadowed {
            let error = AccessRules::parse(&format!("{first}{second}")).unwrap_err();
            assert!(error.contains(": this rule is never used: the rule on line 1 "), "{first}{second}: {error}");
        }
        let fine = [
            (rule("wiki.example.com", Some("/admin")), rule("*.example.com", None)),
            (rule("wiki.example.com", Some("/admin")), rule("wiki.example.com", Some("/administrator"))),
            (rule("*.example.com", None), rule("example.com", None)),
            (rule("wiki.example.com", Some("/admin")), rule("wiki.example.com", None)),
        ];
        for (first, second) in fine {
            assert!(AccessRules::parse(&format!("{first}{second}")).is_ok(), "{first}{second}");
        }
    }

    #[test]
    fn hosts_in_rules_are_compared_in_lower_case_and_trailing_slashes_are_dropped() {
        let rules =
            AccessRules::parse("[[rule]]\nhost = \"Wiki.Example.COM\"\npath = \"/docs/\"\npolicy = \"bypass\"\n")
                .unwrap();
        assert_eq!(rules.rules[0].host, HostPattern::Exact("wiki.example.com".into()));
        assert_eq!(rules.rules[0].path.as_deref(), Some("/docs"));
    }
}
