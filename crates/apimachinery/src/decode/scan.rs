//! A linear pre-scan of a YAML document for how deeply it nests, run before
//! libyaml reads it.
//!
//! libyaml keeps one "simple key" slot per open flow collection (`[`, `{`) and
//! walks the recent ones for every token it reads, so a body of a few hundred
//! thousand `[` costs about a thousand steps per byte; serde_yaml_ng then loads
//! every event of the document before its own recursion limit applies. This
//! scan follows libyaml's tokenizer (unsafe-libyaml's `scanner.rs`) closely
//! enough to know, at every token, the flow level and the stack of block
//! indentations, and stops at the first token where the two together exceed
//! the limit. Quoted and block scalars, plain scalars (which may hold `[` and
//! quotes), comments, tags and anchors are skipped the way libyaml skips them.
//!
//! Where libyaml would report a syntax error the scan carries on as best it
//! can: libyaml stops reading there, so whatever the scan concludes about the
//! rest can only turn a syntax error into a depth error, never let deep input
//! through to libyaml.

/// Where the first token nested too deeply starts, 1-based like serde's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooDeep {
    pub line: usize,
    pub column: usize,
}

/// Checks that no collection in `text` is nested more than `max` levels deep.
pub(super) fn check_depth(text: &str, max: usize) -> Result<(), TooDeep> {
    Scanner::new(text.as_bytes(), max).run()
}

/// A position as libyaml counts it: characters, not bytes.
#[derive(Clone, Copy)]
struct Mark {
    line: usize,
    index: usize,
    column: isize,
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    mark: Mark,
    max: usize,
    flow_level: usize,
    indent: isize,
    indents: Vec<isize>,
    simple_key_allowed: bool,
    /// The simple key saved outside flow collections, which decides where a
    /// block mapping starts when its `:` arrives.
    block_key: Option<Mark>,
    token_start: Mark,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8], max: usize) -> Self {
        let mark = Mark {
            line: 0,
            index: 0,
            column: 0,
        };
        Self {
            b,
            pos: 0,
            mark,
            max,
            flow_level: 0,
            indent: -1,
            indents: Vec::new(),
            simple_key_allowed: true,
            block_key: None,
            token_start: mark,
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.b.get(self.pos + i).copied().unwrap_or(0)
    }

    fn is_break_at(&self, i: usize) -> bool {
        let rest = self.b.get(self.pos + i..).unwrap_or_default();
        matches!(rest.first(), Some(b'\n' | b'\r'))
            || rest.starts_with(b"\xC2\x85")
            || rest.starts_with(b"\xE2\x80\xA8")
            || rest.starts_with(b"\xE2\x80\xA9")
    }

    fn is_blank_at(&self, i: usize) -> bool {
        matches!(self.at(i), b' ' | b'\t')
    }

    /// Blank, line break, or the end of the input (libyaml's `IS_BLANKZ`).
    fn is_blankz_at(&self, i: usize) -> bool {
        self.is_blank_at(i) || self.is_break_at(i) || self.at(i) == 0
    }

    fn at_end(&self) -> bool {
        self.at(0) == 0
    }

    /// Moves past one character, counting lines and columns as libyaml does.
    fn bump(&mut self) {
        if self.at(0) == b'\r' && self.at(1) == b'\n' {
            self.pos += 2;
            self.mark.index += 2;
            self.mark.line += 1;
            self.mark.column = 0;
            return;
        }
        let is_break = self.is_break_at(0);
        self.pos += match self.at(0) {
            0..0x80 => 1,
            0xC0..0xE0 => 2,
            0xE0..0xF0 => 3,
            _ => 4,
        }
        .min(self.b.len() - self.pos);
        self.mark.index += 1;
        if is_break {
            self.mark.line += 1;
            self.mark.column = 0;
        } else {
            self.mark.column += 1;
        }
    }

    fn document_indicator(&self) -> bool {
        self.mark.column == 0
            && (self.b[self.pos..].starts_with(b"---") || self.b[self.pos..].starts_with(b"..."))
            && self.is_blankz_at(3)
    }

    fn too_deep(&self) -> Result<(), TooDeep> {
        if self.indents.len() + self.flow_level > self.max {
            return Err(TooDeep {
                line: self.token_start.line + 1,
                column: usize::try_from(self.token_start.column).unwrap_or(0) + 1,
            });
        }
        Ok(())
    }

    fn roll_indent(&mut self, column: isize) -> Result<(), TooDeep> {
        if self.flow_level == 0 && self.indent < column {
            self.indents.push(self.indent);
            self.indent = column;
            self.too_deep()?;
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: isize) {
        if self.flow_level != 0 {
            return;
        }
        while self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    fn save_simple_key(&mut self) {
        if self.simple_key_allowed && self.flow_level == 0 {
            self.block_key = Some(self.mark);
        }
    }

    fn remove_simple_key(&mut self) {
        if self.flow_level == 0 {
            self.block_key = None;
        }
    }

    fn run(mut self) -> Result<(), TooDeep> {
        loop {
            self.scan_to_next_token();
            self.unroll_indent(self.mark.column);
            if self.at_end() {
                return Ok(());
            }
            self.token_start = self.mark;
            let before = self.pos;
            self.fetch_token()?;
            if self.pos == before {
                // A character no token starts with: libyaml stops here.
                self.bump();
            }
        }
    }

    fn scan_to_next_token(&mut self) {
        loop {
            if self.mark.column == 0 && self.b[self.pos..].starts_with(BOM) {
                self.bump();
            }
            while self.at(0) == b' '
                || ((self.flow_level > 0 || !self.simple_key_allowed) && self.at(0) == b'\t')
            {
                self.bump();
            }
            if self.at(0) == b'#' {
                while !(self.is_break_at(0) || self.at_end()) {
                    self.bump();
                }
            }
            if !self.is_break_at(0) {
                return;
            }
            self.bump();
            if self.flow_level == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    fn fetch_token(&mut self) -> Result<(), TooDeep> {
        let c = self.at(0);
        let flow = self.flow_level > 0;
        if self.mark.column == 0 && c == b'%' {
            self.unroll_indent(-1);
            self.remove_simple_key();
            self.simple_key_allowed = false;
            while !(self.is_break_at(0) || self.at_end()) {
                self.bump();
            }
            if self.is_break_at(0) {
                self.bump();
            }
            return Ok(());
        }
        if self.document_indicator() {
            self.unroll_indent(-1);
            self.remove_simple_key();
            self.simple_key_allowed = false;
            for _ in 0..3 {
                self.bump();
            }
            return Ok(());
        }
        match c {
            b'[' | b'{' => {
                self.save_simple_key();
                self.flow_level += 1;
                self.too_deep()?;
                self.simple_key_allowed = true;
                self.bump();
            }
            b']' | b'}' => {
                self.remove_simple_key();
                self.flow_level = self.flow_level.saturating_sub(1);
                self.simple_key_allowed = false;
                self.bump();
            }
            b',' => {
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.bump();
            }
            b'-' if self.is_blankz_at(1) => {
                self.roll_indent(self.mark.column)?;
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.bump();
            }
            b'?' if flow || self.is_blankz_at(1) => {
                self.roll_indent(self.mark.column)?;
                self.remove_simple_key();
                self.simple_key_allowed = !flow;
                self.bump();
            }
            b':' if flow || self.is_blankz_at(1) => {
                self.fetch_value()?;
                self.bump();
            }
            b'*' | b'&' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.bump();
                while is_anchor_char(self.at(0)) {
                    self.bump();
                }
            }
            b'!' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_tag();
            }
            b'|' | b'>' if !flow => {
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.scan_block_scalar();
            }
            b'\'' | b'"' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_quoted_scalar(c == b'\'');
            }
            _ if self.starts_plain_scalar(c, flow) => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_plain_scalar();
            }
            _ => {}
        }
        Ok(())
    }

    fn starts_plain_scalar(&self, c: u8, flow: bool) -> bool {
        let indicator = self.is_blankz_at(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c);
        !indicator
            || (c == b'-' && !self.is_blank_at(1))
            || (!flow && matches!(c, b'?' | b':') && !self.is_blankz_at(1))
    }

    /// A `:`: the simple key before it, if any, starts a block mapping there.
    fn fetch_value(&mut self) -> Result<(), TooDeep> {
        if self.flow_level > 0 {
            self.simple_key_allowed = false;
            return Ok(());
        }
        let now = self.mark;
        let key = self
            .block_key
            .take()
            .filter(|k| k.line == now.line && k.index + 1024 >= now.index);
        match key {
            Some(k) => {
                self.roll_indent(k.column)?;
                self.simple_key_allowed = false;
            }
            None => {
                self.roll_indent(now.column)?;
                self.simple_key_allowed = true;
            }
        }
        Ok(())
    }

    fn scan_tag(&mut self) {
        self.bump();
        let verbatim = self.at(0) == b'<';
        if verbatim {
            self.bump();
        }
        while is_uri_char(self.at(0), verbatim) {
            self.bump();
        }
        if verbatim && self.at(0) == b'>' {
            self.bump();
        }
    }

    fn scan_block_scalar(&mut self) {
        self.bump();
        let mut increment = 0;
        if matches!(self.at(0), b'+' | b'-') {
            self.bump();
            if matches!(self.at(0), b'1'..=b'9') {
                increment = isize::from(self.at(0) - b'0');
                self.bump();
            }
        } else if matches!(self.at(0), b'1'..=b'9') {
            increment = isize::from(self.at(0) - b'0');
            self.bump();
            if matches!(self.at(0), b'+' | b'-') {
                self.bump();
            }
        }
        while self.is_blank_at(0) {
            self.bump();
        }
        if self.at(0) == b'#' {
            while !(self.is_break_at(0) || self.at_end()) {
                self.bump();
            }
        }
        if !self.is_break_at(0) {
            // libyaml: "did not find expected comment or line break".
            return;
        }
        self.bump();
        let mut indent = match increment {
            0 => 0,
            n if self.indent >= 0 => self.indent + n,
            n => n,
        };
        self.block_scalar_breaks(&mut indent);
        while self.mark.column == indent && !self.at_end() {
            while !(self.is_break_at(0) || self.at_end()) {
                self.bump();
            }
            if self.is_break_at(0) {
                self.bump();
            }
            self.block_scalar_breaks(&mut indent);
        }
    }

    /// Skips the empty lines and indentation of a block scalar; settles its
    /// indentation from the first content line when no indicator gave it.
    fn block_scalar_breaks(&mut self, indent: &mut isize) {
        let mut max_indent = 0;
        loop {
            while (*indent == 0 || self.mark.column < *indent) && self.at(0) == b' ' {
                self.bump();
            }
            max_indent = max_indent.max(self.mark.column);
            if (*indent == 0 || self.mark.column < *indent) && self.at(0) == b'\t' {
                // libyaml: "found a tab character where an indentation space is expected".
                break;
            }
            if !self.is_break_at(0) {
                break;
            }
            self.bump();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
    }

    fn scan_quoted_scalar(&mut self, single: bool) {
        let quote = if single { b'\'' } else { b'"' };
        self.bump();
        loop {
            if self.document_indicator() || self.at_end() {
                return;
            }
            while !self.is_blankz_at(0) {
                let c = self.at(0);
                if single && c == b'\'' && self.at(1) == b'\'' {
                    self.bump();
                    self.bump();
                } else if c == quote {
                    break;
                } else if !single && c == b'\\' && self.is_break_at(1) {
                    self.bump();
                    self.bump();
                    break;
                } else if !single && c == b'\\' {
                    self.bump();
                    if !self.at_end() {
                        self.bump();
                    }
                } else {
                    self.bump();
                }
            }
            if self.at(0) == quote {
                self.bump();
                return;
            }
            while self.is_blank_at(0) || self.is_break_at(0) {
                self.bump();
            }
        }
    }

    fn scan_plain_scalar(&mut self) {
        let indent = self.indent + 1;
        let flow = self.flow_level > 0;
        let mut leading_blanks = false;
        loop {
            if self.document_indicator() || self.at(0) == b'#' {
                break;
            }
            while !self.is_blankz_at(0) {
                let c = self.at(0);
                if flow && c == b':' && b",?[]{}".contains(&self.at(1)) && self.at(1) != 0 {
                    // libyaml: "found unexpected ':'".
                    return;
                }
                if (c == b':' && self.is_blankz_at(1)) || (flow && b",[]{}".contains(&c)) {
                    break;
                }
                leading_blanks = false;
                self.bump();
            }
            if !(self.is_blank_at(0) || self.is_break_at(0)) {
                break;
            }
            while self.is_blank_at(0) || self.is_break_at(0) {
                if self.is_break_at(0) {
                    leading_blanks = true;
                } else if leading_blanks && self.mark.column < indent && self.at(0) == b'\t' {
                    // libyaml: "found a tab character that violates indentation".
                    return;
                }
                self.bump();
            }
            if !flow && self.mark.column < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }
}

fn is_anchor_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-')
}

fn is_uri_char(c: u8, verbatim: bool) -> bool {
    is_anchor_char(c)
        || b";/?:@&=+$.%!~*'()".contains(&c)
        || (verbatim && matches!(c, b',' | b'[' | b']'))
}
