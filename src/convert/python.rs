//! A Python 2 tokenizer, statement finder and literal parser, on bytes.
//!
//! Synnefo settings (`/etc/synnefo/*.conf`) and gunicorn configs
//! (`/etc/gunicorn.d/*`) are Python 2 source. This module reads them the way
//! Python's own tokenizer does — strings of every quoting (`'…'`, `"…"`, triple
//! quotes, `u`/`b`/`r` prefixes, escaped newlines), comments, backslash
//! continuations, brackets nesting across lines, Python 2 numbers (`3600L`,
//! `0755`) — and keeps byte offsets so that callers can edit a value while
//! every other byte stays as it was. It works on bytes: non-UTF-8 bytes in
//! comments and strings are carried, never rejected or re-encoded.
//!
//! It evaluates literals only (strings, numbers, `True`/`False`/`None`, lists,
//! tuples, dicts); anything else is [`NotLiteral`], and the caller stops rather
//! than guess. It never writes anything.

use std::fmt;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword.
    Name,
    /// A number literal, with its Python 2 suffixes.
    Number,
    /// A string literal, prefix and quotes included.
    Str,
    /// An operator or bracket.
    Op,
}

/// One significant token (comments, blank lines and continuations are not tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
}

/// A logical line: one or more physical lines joined by brackets or backslashes.
#[derive(Debug, Clone)]
pub struct Logical {
    /// Its significant tokens.
    pub tokens: Vec<Token>,
    /// Offset of the start of its first physical line.
    pub start: usize,
    /// Offset just past its end of line (or the end of the file).
    pub end: usize,
    /// Bytes of indentation before the first token (0: top level).
    pub indent: usize,
}

/// A comment, from `#` to the end of its line (end of line excluded).
#[derive(Debug, Clone, Copy)]
pub struct Comment {
    /// Offset of the `#`.
    pub start: usize,
    /// Offset just past the comment.
    pub end: usize,
    /// True when only whitespace precedes it on its line.
    pub own_line: bool,
}

/// A tokenized module.
#[derive(Debug, Clone)]
pub struct Module {
    /// The logical lines, in order.
    pub lines: Vec<Logical>,
    /// Every comment, in order.
    pub comments: Vec<Comment>,
    line_starts: Vec<usize>,
}

/// The source cannot be tokenized (Python would refuse it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where (byte offset).
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A value that is not a literal, where a literal is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLiteral {
    /// Where (byte offset).
    pub offset: usize,
    /// What was found.
    pub message: String,
}

impl fmt::Display for NotLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Offsets of the start of every line (`\n`, `\r\n` and a lone `\r` end lines).
pub fn line_starts(src: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'\n' => starts.push(i + 1),
            b'\r' if src.get(i + 1) != Some(&b'\n') => starts.push(i + 1),
            _ => {}
        }
        i += 1;
    }
    starts
}

/// The 1-based line number of `offset`, given [`line_starts`].
pub fn line_at(starts: &[usize], offset: usize) -> usize {
    starts.partition_point(|&s| s <= offset).max(1)
}

impl Module {
    /// The 1-based line number of byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        line_at(&self.line_starts, offset)
    }

    /// Offset of the start of the physical line holding `offset`.
    pub fn line_start(&self, offset: usize) -> usize {
        self.line_starts[self.line(offset) - 1]
    }
}

const OPS3: [&[u8]; 4] = [b"**=", b"//=", b">>=", b"<<="];
const OPS2: [&[u8]; 20] = [
    b"==", b"!=", b"<>", b"<=", b">=", b"**", b"//", b"<<", b">>", b"+=", b"-=", b"*=", b"/=",
    b"%=", b"&=", b"|=", b"^=", b"->", b"@=", b":=",
];
const OPS1: &[u8] = b"+-*/%&|^~<>()[]{},:.;@=`";

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Length of a string prefix (`u`, `b`, `r`, `ur`, `br`, any case) at `i`
/// when a quote follows it, else `None`.
fn string_prefix(src: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    while j < src.len() && j - i < 2 && b"uUbBrR".contains(&src[j]) {
        j += 1;
    }
    let prefix = src[i..j].to_ascii_lowercase();
    let valid = matches!(prefix.as_slice(), b"" | b"u" | b"b" | b"r" | b"ur" | b"br");
    (valid && matches!(src.get(j), Some(b'\'' | b'"'))).then_some(j - i)
}

/// End offset of the string literal whose opening quote is at `q`.
fn scan_string(src: &[u8], start: usize, q: usize) -> Result<usize, SyntaxError> {
    let quote = src[q];
    let n = src.len();
    let triple = src.get(q + 1) == Some(&quote) && src.get(q + 2) == Some(&quote);
    let mut j = if triple { q + 3 } else { q + 1 };
    loop {
        if j >= n {
            return Err(SyntaxError {
                offset: start,
                message: if triple {
                    "triple-quoted string is never closed".into()
                } else {
                    "string is never closed".into()
                },
            });
        }
        match src[j] {
            b'\\' => {
                j += if src.get(j + 1) == Some(&b'\r') && src.get(j + 2) == Some(&b'\n') {
                    3
                } else {
                    2
                };
            }
            b'\n' | b'\r' if !triple => {
                return Err(SyntaxError {
                    offset: start,
                    message: "end of line inside a string".into(),
                })
            }
            c if c == quote => {
                if !triple {
                    return Ok(j + 1);
                }
                if src.get(j + 1) == Some(&quote) && src.get(j + 2) == Some(&quote) {
                    return Ok(j + 3);
                }
                j += 1;
            }
            _ => j += 1,
        }
    }
}

/// End offset of the number starting at `i`.
fn scan_number(src: &[u8], i: usize) -> Result<usize, SyntaxError> {
    let n = src.len();
    let mut j = i;
    let hex = src[i] == b'0' && matches!(src.get(i + 1), Some(b'x' | b'X'));
    if hex {
        j += 2;
        while j < n && src[j].is_ascii_hexdigit() {
            j += 1;
        }
    } else {
        while j < n && (src[j].is_ascii_digit() || src[j] == b'.') {
            j += 1;
        }
        if j < n && matches!(src[j], b'o' | b'O' | b'b' | b'B') && j == i + 1 && src[i] == b'0' {
            j += 1;
            while j < n && src[j].is_ascii_digit() {
                j += 1;
            }
        } else if j < n && matches!(src[j], b'e' | b'E') {
            j += 1;
            if j < n && matches!(src[j], b'+' | b'-') {
                j += 1;
            }
            while j < n && src[j].is_ascii_digit() {
                j += 1;
            }
        }
    }
    if j < n && matches!(src[j], b'l' | b'L' | b'j' | b'J') {
        j += 1;
    }
    if j < n && is_name_char(src[j]) {
        return Err(SyntaxError {
            offset: i,
            message: "invalid number".into(),
        });
    }
    Ok(j)
}

/// The UTF-8 byte order mark, which Python 2 accepts at the start of a file.
pub const BOM: &[u8] = b"\xef\xbb\xbf";

/// Tokenizes Python 2 source. A UTF-8 byte order mark at the start is skipped
/// (the first line starts after it, so that edits keep it in front); a form
/// feed in the indentation resets it, as in Python's tokenizer.
pub fn tokenize(src: &[u8]) -> Result<Module, SyntaxError> {
    let n = src.len();
    let mut lines = Vec::new();
    let mut comments = Vec::new();
    let mut stack: Vec<(u8, usize)> = Vec::new();
    let mut toks: Vec<Token> = Vec::new();
    let mut line_start = 0;
    let mut indent = 0;
    let mut i = if src.starts_with(BOM) { BOM.len() } else { 0 };
    let mut phys_start = i;
    let starts = line_starts(src);
    let err = |offset, message: &str| SyntaxError {
        offset,
        message: message.to_string(),
    };
    while i < n {
        let c = src[i];
        match c {
            b' ' | b'\t' | 0x0c => i += 1,
            b'\\' => {
                i += match (src.get(i + 1), src.get(i + 2)) {
                    (Some(b'\r'), Some(b'\n')) => 3,
                    (Some(b'\n' | b'\r'), _) => 2,
                    (None, _) => return Err(err(i, "end of file after a line continuation")),
                    _ => return Err(err(i, "unexpected character after a line continuation")),
                };
                phys_start = i;
            }
            b'#' => {
                let own_line = src[phys_start..i]
                    .iter()
                    .all(|b| matches!(b, b' ' | b'\t' | 0x0c));
                let s = i;
                while i < n && src[i] != b'\n' && src[i] != b'\r' {
                    i += 1;
                }
                comments.push(Comment {
                    start: s,
                    end: i,
                    own_line,
                });
            }
            b'\n' | b'\r' => {
                i += if c == b'\r' && src.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                if stack.is_empty() && !toks.is_empty() {
                    lines.push(Logical {
                        tokens: std::mem::take(&mut toks),
                        start: line_start,
                        end: i,
                        indent,
                    });
                }
                phys_start = i;
            }
            _ => {
                if toks.is_empty() {
                    line_start = phys_start;
                    let lead = &src[phys_start..i];
                    indent =
                        lead.len() - lead.iter().rposition(|&b| b == 0x0c).map_or(0, |p| p + 1);
                }
                let (kind, end) = if let Some(p) = string_prefix(src, i) {
                    (Kind::Str, scan_string(src, i, i + p)?)
                } else if is_name_start(c) {
                    let mut j = i + 1;
                    while j < n && is_name_char(src[j]) {
                        j += 1;
                    }
                    (Kind::Name, j)
                } else if c.is_ascii_digit()
                    || (c == b'.' && src.get(i + 1).is_some_and(u8::is_ascii_digit))
                {
                    (Kind::Number, scan_number(src, i)?)
                } else if let Some(op) = OPS3
                    .iter()
                    .chain(OPS2.iter())
                    .find(|op| src[i..].starts_with(op))
                {
                    (Kind::Op, i + op.len())
                } else if OPS1.contains(&c) {
                    match c {
                        b'(' | b'[' | b'{' => stack.push((c, i)),
                        b')' | b']' | b'}' => {
                            let want = match c {
                                b')' => b'(',
                                b']' => b'[',
                                _ => b'{',
                            };
                            match stack.pop() {
                                Some((open, _)) if open == want => {}
                                Some((open, at)) => {
                                    return Err(err(
                                        i,
                                        &format!(
                                            "'{}' does not close the '{}' opened on line {}",
                                            c as char,
                                            open as char,
                                            line_at(&starts, at)
                                        ),
                                    ))
                                }
                                None => {
                                    return Err(err(i, &format!("'{}' closes nothing", c as char)))
                                }
                            }
                        }
                        _ => {}
                    }
                    (Kind::Op, i + 1)
                } else if c >= 0x80 {
                    return Err(err(i, "non-ASCII byte outside a string or comment"));
                } else {
                    return Err(err(i, &format!("unexpected character {:?}", c as char)));
                };
                toks.push(Token {
                    kind,
                    start: i,
                    end,
                });
                i = end;
            }
        }
    }
    if let Some(&(open, at)) = stack.last() {
        return Err(err(at, &format!("'{}' is never closed", open as char)));
    }
    if !toks.is_empty() {
        lines.push(Logical {
            tokens: toks,
            start: line_start,
            end: n,
            indent,
        });
    }
    Ok(Module {
        lines,
        comments,
        line_starts: starts,
    })
}

/// The text of token `t`.
pub fn text<'a>(src: &'a [u8], t: &Token) -> &'a [u8] {
    &src[t.start..t.end]
}

/// True when `t` is the operator `op`.
pub fn is_op(src: &[u8], t: &Token, op: &str) -> bool {
    t.kind == Kind::Op && text(src, t) == op.as_bytes()
}

/// Bracket depth change of a token.
pub fn depth_delta(src: &[u8], t: &Token) -> i32 {
    if t.kind != Kind::Op {
        return 0;
    }
    match src[t.start] {
        b'(' | b'[' | b'{' => 1,
        b')' | b']' | b'}' => -1,
        _ => 0,
    }
}

/// Splits `toks` at the depth-0 operators `sep` (a `;` or a `=`), keeping empty parts.
pub fn split_top<'t>(src: &[u8], toks: &'t [Token], sep: &str) -> Vec<&'t [Token]> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut from = 0;
    for (k, t) in toks.iter().enumerate() {
        depth += depth_delta(src, t);
        if depth == 0 && is_op(src, t, sep) {
            parts.push(&toks[from..k]);
            from = k + 1;
        }
    }
    parts.push(&toks[from..]);
    parts
}

// ----- statements -----

/// How a statement assigns its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigns {
    /// `NAME = value` at the top level: the value can be read and edited.
    Simple,
    /// Anything else that binds or changes a name: inside a block (`if`, `for`,
    /// `try`, `def`, …), chained (`A = B = 1`), unpacking, subscripts,
    /// augmented assignment, `del`, `import`.
    Other,
}

/// A statement that assigns names.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// How.
    pub kind: Assigns,
    /// The names it binds or changes (for [`Assigns::Simple`], exactly one).
    pub names: Vec<String>,
    /// Index of its logical line in [`Module::lines`].
    pub line: usize,
    /// Token indices of the value within that line.
    pub value: std::ops::Range<usize>,
    /// True when it is the only statement of its logical line.
    pub alone: bool,
}

const COMPOUND: [&[u8]; 11] = [
    b"if", b"elif", b"else", b"for", b"while", b"try", b"except", b"finally", b"with", b"def",
    b"class",
];

/// Every assigning statement of `module`, in order.
pub fn assignments(src: &[u8], module: &Module) -> Vec<Stmt> {
    let mut out = Vec::new();
    for (li, line) in module.lines.iter().enumerate() {
        let toks = &line.tokens;
        let first = text(src, &toks[0]);
        let nested = line.indent > 0 || first == b"@" || COMPOUND.contains(&first);
        // Statement boundaries: `;`, and `:` after a compound header.
        let mut bounds = vec![0];
        let mut depth = 0;
        for (k, t) in toks.iter().enumerate() {
            depth += depth_delta(src, t);
            if depth == 0 && (is_op(src, t, ";") || (nested && is_op(src, t, ":"))) {
                bounds.push(k + 1);
            }
        }
        bounds.push(toks.len() + 1);
        let segments: Vec<(usize, usize)> = bounds
            .windows(2)
            .map(|w| (w[0], w[1] - 1))
            .filter(|(lo, hi)| lo < hi)
            .collect();
        let alone = segments.len() == 1;
        for (lo, hi) in segments {
            if let Some((kind, names, value)) = analyze(src, toks, lo, hi) {
                out.push(Stmt {
                    kind: if nested { Assigns::Other } else { kind },
                    names,
                    line: li,
                    value,
                    alone,
                });
            }
        }
    }
    out
}

/// The names bound by tokens `lo..hi` (targets): every name not after a `.`.
fn target_names(src: &[u8], toks: &[Token], lo: usize, hi: usize) -> Vec<String> {
    (lo..hi)
        .filter(|&k| toks[k].kind == Kind::Name)
        .filter(|&k| k == lo || !is_op(src, &toks[k - 1], "."))
        .map(|k| String::from_utf8_lossy(text(src, &toks[k])).into_owned())
        .filter(|n| !matches!(n.as_str(), "as" | "import" | "from" | "del"))
        .collect()
}

type Analysis = (Assigns, Vec<String>, std::ops::Range<usize>);

fn analyze(src: &[u8], toks: &[Token], lo: usize, hi: usize) -> Option<Analysis> {
    let first = text(src, &toks[lo]);
    if matches!(first, b"import" | b"from" | b"del" | b"global") {
        return Some((Assigns::Other, target_names(src, toks, lo, hi), hi..hi));
    }
    let mut eqs = Vec::new();
    let mut aug = None;
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().take(hi).skip(lo) {
        depth += depth_delta(src, t);
        if depth != 0 || t.kind != Kind::Op {
            continue;
        }
        let w = text(src, t);
        if w == b"=" {
            eqs.push(k);
        } else if w.len() > 1 && w.ends_with(b"=") && !matches!(w, b"==" | b"!=" | b"<=" | b">=") {
            aug = aug.or(Some(k));
        }
    }
    match (eqs.as_slice(), aug) {
        ([], None) => None,
        ([], Some(a)) => Some((Assigns::Other, target_names(src, toks, lo, a), a + 1..hi)),
        ([eq], _) if *eq == lo + 1 && toks[lo].kind == Kind::Name => Some((
            Assigns::Simple,
            vec![String::from_utf8_lossy(first).into_owned()],
            eq + 1..hi,
        )),
        (eqs, _) => {
            let last = *eqs.last().expect("not empty");
            Some((
                Assigns::Other,
                target_names(src, toks, lo, last),
                last + 1..hi,
            ))
        }
    }
}

// ----- literals -----

/// A bracketed sequence: where its brackets and trailing comma are.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq {
    /// Offset of the opening bracket (none for a bare tuple).
    pub open: Option<usize>,
    /// Offset of the closing bracket (none for a bare tuple).
    pub close: Option<usize>,
    /// Offset of a comma after the last item.
    pub trailing_comma: Option<usize>,
}

/// A parsed literal, with its byte span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// The value.
    pub kind: ExprKind,
    /// Offset of its first byte.
    pub start: usize,
    /// Offset just past it.
    pub end: usize,
}

/// The literal kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A string (adjacent literals joined); `quote` is the first one's quote character.
    Str {
        /// The bytes of the value (UTF-8 for unicode literals).
        value: Vec<u8>,
        /// `'` or `"`.
        quote: u8,
    },
    /// An integer (`L` suffix and Python 2 octal understood).
    Int(i128),
    /// A float, by its source text.
    Float(String),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// A list.
    List(Vec<Expr>, Seq),
    /// A tuple.
    Tuple(Vec<Expr>, Seq),
    /// A dict, in source order.
    Dict(Vec<(Expr, Expr)>, Seq),
}

impl Expr {
    /// The value as text, when it is a UTF-8 string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Str { value, .. } => std::str::from_utf8(value).ok(),
            _ => None,
        }
    }

    /// The value of `key` when this is a dict with a string key `key`.
    pub fn get(&self, key: &str) -> Option<&Expr> {
        match &self.kind {
            ExprKind::Dict(entries, _) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses the literal made of `toks` (one expression; a bare `a, b` is a tuple).
pub fn parse_literal(src: &[u8], toks: &[Token]) -> Result<Expr, NotLiteral> {
    let mut p = Parser { src, toks, pos: 0 };
    let Some(first) = toks.first() else {
        return Err(NotLiteral {
            offset: 0,
            message: "no value".into(),
        });
    };
    let expr = p.items_or_single(None, first.start)?;
    if let Some(t) = p.peek() {
        return Err(p.not_literal(t));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a [u8],
    toks: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Token> {
        self.toks.get(self.pos).copied()
    }

    fn at_op(&self, op: &str) -> bool {
        self.peek().is_some_and(|t| is_op(self.src, &t, op))
    }

    fn not_literal(&self, t: Token) -> NotLiteral {
        let shown = String::from_utf8_lossy(text(self.src, &t)).into_owned();
        let message = match t.kind {
            Kind::Name => format!("'{shown}' is not a literal (a name, computed at run time)"),
            _ => {
                format!("'{shown}' is not part of a literal (an expression, computed at run time)")
            }
        };
        NotLiteral {
            offset: t.start,
            message,
        }
    }

    fn end_error(&self) -> NotLiteral {
        NotLiteral {
            offset: self.toks.last().map_or(0, |t| t.end),
            message: "the value ends early".into(),
        }
    }

    /// Comma-separated items up to `close` (or the end, for a bare tuple).
    /// A single item without a comma is returned as itself when `close` is `)` or none.
    fn items_or_single(&mut self, close: Option<&str>, start: usize) -> Result<Expr, NotLiteral> {
        let mut items = Vec::new();
        let mut trailing_comma = None;
        let mut saw_comma = false;
        loop {
            if close.is_some_and(|c| self.at_op(c)) || (close.is_none() && self.peek().is_none()) {
                break;
            }
            items.push(self.value()?);
            trailing_comma = None;
            if self.at_op(",") {
                trailing_comma = self.peek().map(|t| t.start);
                saw_comma = true;
                self.pos += 1;
            } else {
                break;
            }
        }
        let close_at = match close {
            Some(c) => {
                let t = self.peek().ok_or_else(|| self.end_error())?;
                if !is_op(self.src, &t, c) {
                    return Err(self.not_literal(t));
                }
                self.pos += 1;
                Some(t.start)
            }
            None => None,
        };
        let end = close_at.map_or_else(|| items.last().map_or(start, |e| e.end), |c| c + 1);
        let seq = Seq {
            open: close.map(|_| start),
            close: close_at,
            trailing_comma,
        };
        match close {
            Some("]") => Ok(Expr {
                kind: ExprKind::List(items, seq),
                start,
                end,
            }),
            _ if items.len() == 1 && !saw_comma => {
                let mut only = items.pop().expect("one item");
                if close.is_some() {
                    only.start = start;
                    only.end = end;
                }
                Ok(only)
            }
            _ => Ok(Expr {
                kind: ExprKind::Tuple(items, seq),
                start,
                end,
            }),
        }
    }

    fn value(&mut self) -> Result<Expr, NotLiteral> {
        let t = self.peek().ok_or_else(|| self.end_error())?;
        self.pos += 1;
        let src = self.src;
        let word = text(src, &t);
        let simple = |kind| Expr {
            kind,
            start: t.start,
            end: t.end,
        };
        let expr = match t.kind {
            Kind::Str => {
                let (mut value, quote) = decode_string(word).map_err(|m| NotLiteral {
                    offset: t.start,
                    message: m,
                })?;
                let mut end = t.end;
                while let Some(next) = self.peek().filter(|n| n.kind == Kind::Str) {
                    let (more, _) = decode_string(text(src, &next)).map_err(|m| NotLiteral {
                        offset: next.start,
                        message: m,
                    })?;
                    value.extend(more);
                    end = next.end;
                    self.pos += 1;
                }
                Expr {
                    kind: ExprKind::Str { value, quote },
                    start: t.start,
                    end,
                }
            }
            Kind::Number => simple(parse_number(word).map_err(|m| NotLiteral {
                offset: t.start,
                message: m,
            })?),
            Kind::Name => match word {
                b"True" => simple(ExprKind::Bool(true)),
                b"False" => simple(ExprKind::Bool(false)),
                b"None" => simple(ExprKind::None),
                _ => return Err(self.not_literal(t)),
            },
            Kind::Op => match word {
                b"-" | b"+" => {
                    let inner = self.value()?;
                    let kind = match (word, inner.kind) {
                        (b"+", k @ (ExprKind::Int(_) | ExprKind::Float(_))) => k,
                        (b"-", ExprKind::Int(v)) => ExprKind::Int(-v),
                        (b"-", ExprKind::Float(f)) => ExprKind::Float(format!("-{f}")),
                        _ => return Err(self.not_literal(t)),
                    };
                    Expr {
                        kind,
                        start: t.start,
                        end: inner.end,
                    }
                }
                b"(" => self.items_or_single(Some(")"), t.start)?,
                b"[" => self.items_or_single(Some("]"), t.start)?,
                b"{" => self.dict(t.start)?,
                _ => return Err(self.not_literal(t)),
            },
        };
        // A literal followed by an operator, a call or a subscript is an expression.
        if let Some(next) = self.peek() {
            let w = text(src, &next);
            if !(next.kind == Kind::Op && matches!(w, b"," | b")" | b"]" | b"}" | b":")) {
                return Err(self.not_literal(next));
            }
        }
        Ok(expr)
    }

    fn dict(&mut self, start: usize) -> Result<Expr, NotLiteral> {
        let mut entries = Vec::new();
        let mut trailing_comma = None;
        while !self.at_op("}") {
            let key = self.value()?;
            let colon = self.peek().ok_or_else(|| self.end_error())?;
            if !is_op(self.src, &colon, ":") {
                return Err(self.not_literal(colon));
            }
            self.pos += 1;
            let value = self.value()?;
            entries.push((key, value));
            trailing_comma = None;
            if self.at_op(",") {
                trailing_comma = self.peek().map(|t| t.start);
                self.pos += 1;
            } else {
                break;
            }
        }
        let close = self.peek().ok_or_else(|| self.end_error())?;
        if !is_op(self.src, &close, "}") {
            return Err(self.not_literal(close));
        }
        self.pos += 1;
        Ok(Expr {
            kind: ExprKind::Dict(
                entries,
                Seq {
                    open: Some(start),
                    close: Some(close.start),
                    trailing_comma,
                },
            ),
            start,
            end: close.end,
        })
    }
}

/// Parses a Python 2 number literal.
fn parse_number(word: &[u8]) -> Result<ExprKind, String> {
    let s = std::str::from_utf8(word).map_err(|_| "invalid number".to_string())?;
    let bad = || format!("invalid number '{s}'");
    if s.ends_with(['j', 'J']) {
        return Err(format!("'{s}' is a complex number, not a plain literal"));
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.strip_suffix('l').unwrap_or(&lower);
    let is_hex = body.starts_with("0x");
    if !is_hex && (body.contains('.') || body.contains('e')) {
        body.parse::<f64>().map_err(|_| bad())?;
        return Ok(ExprKind::Float(s.to_string()));
    }
    let (digits, radix) = if let Some(h) = body.strip_prefix("0x") {
        (h, 16)
    } else if let Some(o) = body.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = body.strip_prefix("0b") {
        (b, 2)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8) // Python 2 octal: 0755
    } else {
        (body, 10)
    };
    i128::from_str_radix(digits, radix)
        .map(ExprKind::Int)
        .map_err(|_| bad())
}

/// Decodes one string literal token into its value bytes and quote character.
pub fn decode_string(word: &[u8]) -> Result<(Vec<u8>, u8), String> {
    let q_at = word
        .iter()
        .position(|b| *b == b'\'' || *b == b'"')
        .ok_or("not a string")?;
    let prefix = word[..q_at].to_ascii_lowercase();
    let raw = prefix.contains(&b'r');
    let unicode = prefix.contains(&b'u');
    let quote = word[q_at];
    let body = &word[q_at..];
    let qlen = if body.len() >= 6 && body[1] == quote && body[2] == quote {
        3
    } else {
        1
    };
    let body = &body[qlen..body.len() - qlen];
    if raw {
        return Ok((body.to_vec(), quote));
    }
    let mut out = Vec::with_capacity(body.len());
    let push_code = |out: &mut Vec<u8>, code: u32| -> Result<(), String> {
        if unicode {
            let c = char::from_u32(code).ok_or("invalid \\u escape")?;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        } else {
            out.push(u8::try_from(code).map_err(|_| "octal escape out of range")?);
        }
        Ok(())
    };
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c != b'\\' || i + 1 >= body.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = body[i + 1];
        i += 2;
        match e {
            b'\n' => {}
            b'\r' => {
                if body.get(i) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut code = u32::from(e - b'0');
                let mut k = 0;
                while k < 2 && i < body.len() && (b'0'..=b'7').contains(&body[i]) {
                    code = code * 8 + u32::from(body[i] - b'0');
                    i += 1;
                    k += 1;
                }
                push_code(&mut out, code & if unicode { 0x1ff } else { 0xff })?;
            }
            b'x' | b'u' | b'U' if e == b'x' || unicode => {
                let len = match e {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = body
                    .get(i..i + len)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid \\{} escape", e as char))?;
                i += len;
                push_code(&mut out, hex)?;
            }
            b'N' if unicode => return Err("\\N{...} escapes are not supported".into()),
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Ok((out, quote))
}

// ----- rendering -----

/// A value to write as Python source.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A string (written with double quotes, non-ASCII as `\xNN` escapes).
    Str(String),
    /// An integer.
    Int(i128),
    /// A float, by its text.
    Float(String),
    /// `None`.
    None,
    /// A list, written on one line.
    List(Vec<Lit>),
    /// A dict, written one entry per line.
    Dict(Vec<(String, Lit)>),
}

/// A Python 2 string literal for `s` with quote character `q`; valid in any
/// source encoding (non-ASCII bytes are escaped).
pub fn quote(s: &str, q: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ if b as char == q => {
                out.push('\\');
                out.push(q);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(q);
    out
}

/// Writes `lit` as Python source; nested lines are indented by `indent` spaces
/// more than the first and end with `eol`.
pub fn render(lit: &Lit, indent: usize, eol: &str) -> String {
    match lit {
        Lit::Str(s) => quote(s, '"'),
        Lit::Int(v) => v.to_string(),
        Lit::Float(f) => f.clone(),
        Lit::None => "None".into(),
        Lit::List(items) => {
            let inner: Vec<String> = items.iter().map(|i| render(i, indent, eol)).collect();
            format!("[{}]", inner.join(", "))
        }
        Lit::Dict(entries) => {
            let pad = " ".repeat(indent + 4);
            let mut out = format!("{{{eol}");
            for (k, v) in entries {
                out.push_str(&format!(
                    "{pad}{}: {},{eol}",
                    quote(k, '"'),
                    render(v, indent + 4, eol)
                ));
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<Vec<String>> {
        let m = tokenize(src.as_bytes()).unwrap();
        m.lines
            .iter()
            .map(|l| {
                l.tokens
                    .iter()
                    .map(|t| String::from_utf8_lossy(text(src.as_bytes(), t)).into_owned())
                    .collect()
            })
            .collect()
    }

    fn lit(src: &str) -> Result<ExprKind, NotLiteral> {
        let m = tokenize(src.as_bytes()).unwrap();
        parse_literal(src.as_bytes(), &m.lines[0].tokens).map(|e| e.kind)
    }

    fn s(v: &str) -> ExprKind {
        ExprKind::Str {
            value: v.as_bytes().to_vec(),
            quote: b'"',
        }
    }

    #[test]
    fn logical_lines_join_brackets_continuations_and_triple_quotes() {
        let src = "A = {\n  'a': 1,  # c {\n}\nB = 1 + \\\n 2\nC = '''x\ny''' ; D = u\"q\\\"\" # t\n\n  \nE=3";
        assert_eq!(
            words(src),
            vec![
                vec!["A", "=", "{", "'a'", ":", "1", ",", "}"],
                vec!["B", "=", "1", "+", "2"],
                vec!["C", "=", "'''x\ny'''", ";", "D", "=", "u\"q\\\"\""],
                vec!["E", "=", "3"],
            ]
        );
        let m = tokenize(src.as_bytes()).unwrap();
        assert_eq!(m.lines[1].start, src.find("B =").unwrap());
        assert_eq!(m.line(m.lines[3].start), 10);
        assert_eq!(m.comments.len(), 2);
        assert!(!m.comments[0].own_line);
    }

    #[test]
    fn assignments_top_level_and_nested() {
        let src = "A = 1\nB = C = 2\nD['k'] = 3\nE += [4]\nif X:\n    F = 5\nelse: G = 6\nH = 7; I = 8\nprint J\nimport os.path as K\nL == 9\nM = lambda: 1\n";
        let m = tokenize(src.as_bytes()).unwrap();
        let got: Vec<(Assigns, Vec<String>, bool)> = assignments(src.as_bytes(), &m)
            .into_iter()
            .map(|s| (s.kind, s.names, s.alone))
            .collect();
        use Assigns::*;
        let v = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (Simple, v(&["A"]), true),
                (Other, v(&["B", "C"]), true),
                (Other, v(&["D"]), true),
                (Other, v(&["E"]), true),
                (Other, v(&["F"]), true),
                (Other, v(&["G"]), false),
                (Simple, v(&["H"]), false),
                (Simple, v(&["I"]), false),
                (Other, v(&["os", "K"]), true),
                (Simple, v(&["M"]), true),
            ]
        );
    }

    #[test]
    fn crlf_tabs_and_indentation() {
        let src = "if X:\r\n\tA = 1\r\nB = (1,\r\n\t2)\r\n";
        let m = tokenize(src.as_bytes()).unwrap();
        assert_eq!(m.lines.len(), 3);
        assert_eq!(m.lines[1].indent, 1);
        assert_eq!(m.lines[2].indent, 0);
        assert_eq!(m.lines[2].end, src.len());
        assert_eq!(m.line(m.lines[2].tokens[5].start), 4);
    }

    #[test]
    fn byte_order_mark_and_form_feeds_as_python_2_reads_them() {
        // The mark is not part of the first line, which is top level.
        let src = b"\xef\xbb\xbfA = 1  # c\n# own\n";
        let m = tokenize(src).unwrap();
        assert_eq!((m.lines[0].start, m.lines[0].indent), (3, 0));
        assert_eq!(assignments(src, &m)[0].kind, Assigns::Simple);
        assert!(!m.comments[0].own_line && m.comments[1].own_line);
        let m = tokenize(b"\xef\xbb\xbf# only a comment\n").unwrap();
        assert!(m.lines.is_empty() && m.comments[0].own_line);
        // Only at the start: elsewhere it is a non-ASCII byte like any other.
        assert!(tokenize(b"A = 1\n\xef\xbb\xbfB = 2\n").is_err());
        // A form feed resets the indentation (Emacs page breaks).
        let src = b"\x0cA = 1\nif X:\n  \x0c  B = 2\n\x0c\n  \x0cC = 3\n";
        let m = tokenize(src).unwrap();
        let indents: Vec<usize> = m.lines.iter().map(|l| l.indent).collect();
        assert_eq!(indents, [0, 0, 2, 0]);
        let kinds: Vec<Assigns> = assignments(src, &m).iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [Assigns::Simple, Assigns::Other, Assigns::Simple]);
    }

    #[test]
    fn syntax_errors_name_the_place() {
        let e = tokenize(b"A = 1\nB = {\n 'a': 1,\n").unwrap_err();
        assert_eq!((e.offset, e.message.as_str()), (10, "'{' is never closed"));
        let e = tokenize(b"A = 'abc\n").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(tokenize(b"A = (1]\n")
            .unwrap_err()
            .message
            .contains("line 1"));
        assert!(tokenize(b"A = '''x\n").is_err());
        assert!(tokenize(b"A = 1 \\ 2\n").is_err());
        assert!(tokenize(b"A = \xe9\n").is_err());
        assert!(tokenize(b"A = 12ab\n").is_err());
        // Non-UTF-8 bytes in comments and strings are fine.
        assert!(tokenize(b"# caf\xe9\nA = 'caf\xe9'\n").is_ok());
    }

    #[test]
    fn literals_python2() {
        assert_eq!(lit("3600L").unwrap(), ExprKind::Int(3600));
        assert_eq!(lit("0755").unwrap(), ExprKind::Int(0o755));
        assert_eq!(lit("0x1F").unwrap(), ExprKind::Int(31));
        assert_eq!(lit("-5").unwrap(), ExprKind::Int(-5));
        assert_eq!(lit("1.5e3").unwrap(), ExprKind::Float("1.5e3".into()));
        assert_eq!(lit("\"a\" 'b'").unwrap(), s("ab"));
        assert_eq!(lit(r#"u"\u00e9\x41""#).unwrap(), s("éA"));
        assert_eq!(lit(r#"r"a\nb""#).unwrap(), s(r"a\nb"));
        assert_eq!(lit(r#""a\tb\\\"""#).unwrap(), s("a\tb\\\""));
        assert_eq!(
            lit("('x')").unwrap(),
            ExprKind::Str {
                value: b"x".to_vec(),
                quote: b'\''
            }
        );
        assert!(matches!(lit("(1,)").unwrap(), ExprKind::Tuple(v, _) if v.len() == 1));
        assert!(matches!(lit("1, 2").unwrap(), ExprKind::Tuple(v, _) if v.len() == 2));
        assert!(matches!(lit("[]").unwrap(), ExprKind::List(v, _) if v.is_empty()));
        let d = tokenize(b"{'a': [1, None], \"b\": {True: ()},}").unwrap();
        let e = parse_literal(b"{'a': [1, None], \"b\": {True: ()},}", &d.lines[0].tokens).unwrap();
        assert!(matches!(&e.get("a").unwrap().kind, ExprKind::List(v, _) if v.len() == 2));
        assert!(matches!(&e.kind, ExprKind::Dict(_, seq) if seq.trailing_comma == Some(32)));
    }

    #[test]
    fn non_literals_are_refused_with_the_culprit() {
        let e = lit("CACHE_BACKEND").unwrap_err();
        assert!(
            e.message.contains("'CACHE_BACKEND' is not a literal"),
            "{e}"
        );
        let e = lit("'memcached://%s/' % HOST").unwrap_err();
        assert!(e.message.contains("'%'"), "{e}");
        assert_eq!(e.offset, 18);
        assert!(lit("dict(a=1)").is_err());
        assert!(lit("{1, 2}").is_err());
        assert!(lit("[1, 2][0]").is_err());
        assert!(lit("1j").is_err());
        assert!(lit("'a'.upper()").is_err());
    }

    #[test]
    fn render_and_quote_roundtrip() {
        let v = Lit::Dict(vec![
            ("BACKEND".into(), Lit::Str("x\"y".into())),
            (
                "LOCATION".into(),
                Lit::List(vec![Lit::Str("a".into()), Lit::Str("é".into())]),
            ),
            ("TIMEOUT".into(), Lit::None),
        ]);
        let text = format!("X = {}\n", render(&v, 0, "\n"));
        assert_eq!(
            text,
            "X = {\n    \"BACKEND\": \"x\\\"y\",\n    \"LOCATION\": [\"a\", \"\\xc3\\xa9\"],\n    \"TIMEOUT\": None,\n}\n"
        );
        let m = tokenize(text.as_bytes()).unwrap();
        let toks = &m.lines[0].tokens[2..];
        let e = parse_literal(text.as_bytes(), toks).unwrap();
        assert_eq!(e.get("BACKEND").unwrap().as_str(), Some("x\"y"));
        assert!(
            matches!(&e.get("LOCATION").unwrap().kind, ExprKind::List(v, _) if v[1].as_str() == Some("é"))
        );
    }
}
