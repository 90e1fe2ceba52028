//! A served HTML form, read the way a browser reads it (HTML Living
//! Standard, "constructing the entry list"), so tests submit exactly what a
//! person pressing the button would send.

use scraper::{ElementRef, Html, Selector};

/// One named control of a form, as the browser would submit it.
#[derive(Clone, Debug)]
struct Control {
    name: String,
    value: String,
    /// Unchecked checkboxes and radios: known, but not sent unless a test
    /// ticks them.
    sent: bool,
    /// A checkbox or radio.
    checkable: bool,
}

/// A form found on a page by its `action`.
#[derive(Clone, Debug)]
pub struct HtmlForm {
    pub action: String,
    pub method: String,
    controls: Vec<Control>,
}

impl HtmlForm {
    /// The first form on `html` whose `action` attribute is `action`;
    /// panics, listing the forms there are, when there is none.
    pub fn find(html: &str, action: &str) -> Self {
        let document = Html::parse_document(html);
        let forms = Selector::parse("form").unwrap();
        let actions: Vec<String> =
            document.select(&forms).map(|form| form.value().attr("action").unwrap_or("").to_owned()).collect();
        let form = document
            .select(&forms)
            .find(|form| form.value().attr("action") == Some(action))
            .unwrap_or_else(|| panic!("no form with action {action:?} on the page (forms: {actions:?}):\n{html}"));
        Self {
            action: action.to_owned(),
            method: form.value().attr("method").unwrap_or("get").to_ascii_lowercase(),
            controls: controls_of(form),
        }
    }

    /// `(method, action)` of every form on `html`, in page order.
    pub fn all_on(html: &str) -> Vec<(String, String)> {
        let document = Html::parse_document(html);
        let forms = Selector::parse("form").unwrap();
        document
            .select(&forms)
            .map(|form| {
                let attrs = form.value();
                (
                    attrs.attr("method").unwrap_or("get").to_ascii_lowercase(),
                    attrs.attr("action").unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Lays `fields` over the served values. A checkbox or radio named here
    /// is ticked: the one of that name with that value if there is one
    /// (boxes that share a name), else the first of that name, given that
    /// value. Panics when the form has no control of that name: a test must
    /// not send what no browser would.
    pub fn fill(mut self, fields: &[(&str, &str)]) -> Self {
        for (name, value) in fields {
            let exact = self
                .controls
                .iter()
                .any(|control| control.checkable && control.name == *name && control.value == *value);
            let Some(control) = self
                .controls
                .iter_mut()
                .find(|control| control.name == *name && (!exact || (control.checkable && control.value == *value)))
            else {
                let names: Vec<&str> = self.controls.iter().map(|control| control.name.as_str()).collect();
                panic!("the form to {} has no field {name:?} (it has {names:?})", self.action);
            };
            control.value = (*value).to_owned();
            control.sent = true;
        }
        self
    }

    /// The body a browser would send: `application/x-www-form-urlencoded`.
    pub fn encode(&self) -> String {
        let sent: Vec<(&str, &str)> = self
            .controls
            .iter()
            .filter(|control| control.sent)
            .map(|control| (control.name.as_str(), control.value.as_str()))
            .collect();
        serde_urlencoded::to_string(sent).unwrap()
    }
}

/// The named, enabled controls of `form` in tree order, with the first
/// submit button as the submitter.
fn controls_of(form: ElementRef) -> Vec<Control> {
    let selector = Selector::parse("input, textarea, select, button").unwrap();
    let mut controls = Vec::new();
    let mut submitter_seen = false;
    for element in form.select(&selector) {
        let attrs = element.value();
        let kind = attrs.attr("type").unwrap_or("").to_ascii_lowercase();
        let is_submit = match attrs.name() {
            "button" => kind.is_empty() || kind == "submit",
            "input" => kind == "submit" || kind == "image",
            _ => false,
        };
        // Only the button pressed is sent; tests press the first one.
        let is_submitter = is_submit && !submitter_seen;
        submitter_seen |= is_submit;
        let Some(name) = attrs.attr("name").filter(|name| !name.is_empty()) else { continue };
        if attrs.attr("disabled").is_some() {
            continue;
        }
        let name = name.to_owned();
        let value = attrs.attr("value").unwrap_or("").to_owned();
        let control = match (attrs.name(), kind.as_str()) {
            (_, _) if is_submit => Control { name, value, sent: is_submitter, checkable: false },
            ("button", _) | ("input", "button" | "reset" | "file") => continue,
            ("input", "checkbox" | "radio") => {
                let value = attrs.attr("value").unwrap_or("on").to_owned();
                Control { name, value, sent: attrs.attr("checked").is_some(), checkable: true }
            }
            ("textarea", _) => Control { name, value: element.text().collect(), sent: true, checkable: false },
            ("select", _) => Control { name, value: selected_option(element), sent: true, checkable: false },
            _ => Control { name, value, sent: true, checkable: false },
        };
        controls.push(control);
    }
    controls
}

/// The selected option's value, or the first option's when none is.
fn selected_option(select: ElementRef) -> String {
    let options = Selector::parse("option").unwrap();
    let mut all = select.select(&options);
    let chosen =
        select.select(&options).find(|option| option.value().attr("selected").is_some()).or_else(|| all.next());
    chosen.map_or_else(String::new, |option| {
        option.value().attr("value").map_or_else(|| option.text().collect(), str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::HtmlForm;

    const PAGE: &str = r#"<form action="/other"><input name="x" value="1"></form>
        <form method="post" action="/account/password">
          <input type="hidden" name="csrf_token" value="t&amp;1">
          <input type="text" name="username" value="ann@example.com" hidden>
          <input name="password" type="password">
          <input type="checkbox" name="remember_me" value="on">
          <input type="checkbox" name="ticked" checked>
          <input name="off" value="x" disabled>
          <select name="pick"><option value="a">A</option><option value="b" selected>B</option></select>
          <textarea name="note">hi</textarea>
          <button type="submit" name="go" value="yes">Go</button>
          <button type="submit" name="other" value="no">Other</button>
        </form>"#;

    #[test]
    fn a_form_sends_what_a_browser_sends() {
        let form = HtmlForm::find(PAGE, "/account/password").fill(&[("password", "p w")]);
        assert_eq!(form.method, "post");
        assert_eq!(
            form.encode(),
            "csrf_token=t%261&username=ann%40example.com&password=p+w&ticked=on&pick=b&note=hi&go=yes"
        );
    }

    #[test]
    fn ticking_a_checkbox_sends_it() {
        let form = HtmlForm::find(PAGE, "/account/password").fill(&[("remember_me", "on")]);
        assert!(form.encode().contains("remember_me=on"));
    }

    #[test]
    fn boxes_sharing_a_name_are_ticked_by_value() {
        let page = r#"<form method="post" action="/a">
            <input type="checkbox" name="groups" value="ops">
            <input type="checkbox" name="groups" value="staff">
            <input type="checkbox" name="groups" value="wiki"></form>"#;
        let form = HtmlForm::find(page, "/a").fill(&[("groups", "wiki"), ("groups", "ops")]);
        assert_eq!(form.encode(), "groups=ops&groups=wiki");
    }

    #[test]
    #[should_panic(expected = "has no field \"nope\"")]
    fn a_field_the_form_lacks_fails_the_test() {
        let _ = HtmlForm::find(PAGE, "/account/password").fill(&[("nope", "1")]);
    }
}
