//! The few pages a person sees from the gate: plain HTML, every value
//! escaped, no outside resources.

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page titled `title`; `text` and the optional link are escaped here.
pub fn page(title: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let link = link
        .map(|(href, label)| {
            format!(
                "<p><a id=\"next\" href=\"{}\">{}</a></p>",
                escape(href),
                escape(label)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1 id=\"title\">{t}</h1><p id=\"message\">{m}</p>{link}\
         <p><small>Terrarium sign-on (trm-gate)</small></p></body></html>\n",
        t = escape(title),
        m = escape(text),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_escaped() {
        let p = super::page("<t>", "a & \"b\"", Some(("https://x/?a=1&b=<2>", "go")));
        assert!(p.contains("&lt;t&gt;"));
        assert!(p.contains("a &amp; &quot;b&quot;"));
        assert!(p.contains("href=\"https://x/?a=1&amp;b=&lt;2&gt;\""));
        assert!(!p.contains("<t>"));
    }
}
