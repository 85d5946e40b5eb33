//! `${env:VAR}`, `${env:VAR:-default}`, `${VAR}` and `$$` expansion, applied to the raw YAML text
//! before parsing — the same rules as the OpenTelemetry Collector's confmap.

/// A variable the text references that is unset and has no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetVariable {
    pub name: String,
    /// 1-based line of the reference, so the error points at the YAML that needs fixing.
    pub line: usize,
}

/// Expands variables using `lookup`. Values are inserted verbatim (never logged here or by callers:
/// they are often secrets). Every unset variable is reported, not just the first.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<UnsetVariable>> {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    // Comments are documentation: `${env:X}` in a comment is an example, not a reference.
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let (code, comment) = line.split_at(comment_start(line));
        expand_line(code, index + 1, &lookup, &mut out, &mut unset);
        out.push_str(comment);
    }
    if unset.is_empty() {
        Ok(out)
    } else {
        Err(unset)
    }
}

/// Byte offset of a YAML comment (`#` at the start or after whitespace, outside quotes).
fn comment_start(line: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return i,
            None => {}
        }
        previous = c;
    }
    line.len()
}

fn expand_line(
    text: &str,
    line: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    unset: &mut Vec<UnsetVariable>,
) {
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(pos);
        out.push_str(before);
        if let Some(after) = from_dollar.strip_prefix("$$") {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(body_and_rest) = from_dollar.strip_prefix("${") else {
            out.push('$');
            rest = &from_dollar[1..];
            continue;
        };
        let Some(close) = body_and_rest.find('}') else {
            out.push_str(from_dollar);
            rest = "";
            break;
        };
        let body = &body_and_rest[..close];
        rest = &body_and_rest[close + 1..];
        let reference = body.strip_prefix("env:").unwrap_or(body);
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        if !is_variable_name(name) {
            // Not ours (e.g. a `${file:…}` provider we don't support): leave it for the YAML
            // parser and the field validation to reject with a path.
            out.push_str("${");
            out.push_str(body);
            out.push('}');
            continue;
        }
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => unset.push(UnsetVariable {
                name: name.to_string(),
                line,
            }),
        }
    }
    out.push_str(rest);
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cr3t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_all_forms() {
        let text = "a: ${env:TOKEN}\nb: ${TOKEN}\nc: ${env:MISSING:-fallback}\nd: $$HOME\ne: ${env:EMPTY:-x}";
        assert_eq!(
            expand(text, env).unwrap(),
            "a: s3cr3t\nb: s3cr3t\nc: fallback\nd: $HOME\ne: "
        );
    }

    #[test]
    fn reports_every_unset_variable_with_its_line() {
        let err = expand("a: ok\nb: ${env:NOPE}\nc: ${ALSO_NOPE}", env).unwrap_err();
        assert_eq!(
            err,
            vec![
                UnsetVariable {
                    name: "NOPE".into(),
                    line: 2
                },
                UnsetVariable {
                    name: "ALSO_NOPE".into(),
                    line: 3
                }
            ]
        );
    }

    #[test]
    fn comments_are_not_expanded() {
        assert_eq!(
            expand("a: 1 # ${env:NOPE}\n# ${NOPE}\nb: \"x#${TOKEN}\"", env).unwrap(),
            "a: 1 # ${env:NOPE}\n# ${NOPE}\nb: \"x#s3cr3t\""
        );
    }

    #[test]
    fn leaves_lone_dollars_and_foreign_providers_alone() {
        assert_eq!(
            expand("p: a$b ${file:/x}", env).unwrap(),
            "p: a$b ${file:/x}"
        );
    }
}
