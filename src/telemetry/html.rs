//! HTML escaping for the status pages (DNS and site): every string that comes from a zone or
//! site file, a check, the runtime API or a request goes through [`esc`] before it reaches a
//! page.

use std::borrow::Cow;

/// `s` with `& < > " '` replaced by character references (safe in text and quoted attributes).
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

/// The look both status pages share: header bar, tables, state dots, the "not updating" flag.
pub const BASE_STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f4f6f8}
header{display:flex;gap:1em;align-items:baseline;padding:.6em 1.2em;background:#1d2430;color:#fff}
header h1{font-size:1.2em;margin:0}
#stale{display:none;color:#ffb4b0}
body[data-stale=yes] #stale{display:inline}
main{padding:0 1.2em 2em;max-width:1400px}
h2{font-size:1.05em;margin:1.2em 0 .5em}
.dot{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.35em;vertical-align:-.05em;border:1px solid #1d2430}
.green{background:#2e9e44}.amber{background:#e8a317}.red{background:#d2302c}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:.3em .6em;border-bottom:1px solid #e1e6eb;text-align:left;white-space:nowrap}
th{background:#e9edf1;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
small{color:#5b6775}
"#;

/// Redraws `#live` from `/status/live` every two seconds; marks the page stale while the
/// admin listener does not answer. Both status pages serve their fragment there.
pub const LIVE_SCRIPT: &str = r#"
(function(){
  var live=document.getElementById('live');
  function refresh(){
    fetch('/status/live',{cache:'no-store'})
      .then(function(r){if(!r.ok)throw new Error(r.status);return r.text();})
      .then(function(t){live.innerHTML=t;document.body.dataset.stale='no';})
      .catch(function(){document.body.dataset.stale='yes';});
  }
  setInterval(refresh,2000);
})();
"#;

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("eu-west"), "eu-west");
        assert_eq!(
            esc(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
