//! The parser: a port of Go's `text/template/parse/parse.go` (recursive descent over the
//! token vector, variable scoping, `define`/`block`, `else if`/`else with` chains), with
//! a nesting bound so hostile input cannot exhaust the stack.

use std::collections::BTreeMap;

use super::ast::{is_empty_tree, Branch, Command, Node, Op, Operand, Pipe, TemplateCall};
use super::funcs;
use super::lex::{lex, Kind, Token};
use super::literal::{new_number, unquote};
use super::strconv::go_quote;
use super::{TemplateError, MAX_NESTING};

/// Parsed templates by name; the main template is `""`, as in consul-template.
pub(crate) type Trees = BTreeMap<String, Vec<Node>>;

pub(crate) fn parse(
    name: &str,
    text: &str,
    left: &str,
    right: &str,
) -> Result<Trees, TemplateError> {
    let mut p = Parser {
        name,
        toks: lex(text, left, right),
        idx: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        nesting: 0,
        action_line: 0,
        last_line: 1,
        trees: BTreeMap::new(),
    };
    let root = p.parse_top()?;
    p.add_tree(String::new(), root)?;
    Ok(p.trees)
}

enum Item {
    Node(Node),
    End,
    Else,
}

#[derive(PartialEq, Eq)]
enum ListEnd {
    End,
    Else,
}

type PResult<T> = Result<T, TemplateError>;

struct Parser<'a> {
    name: &'a str,
    toks: Vec<Token>,
    idx: usize,
    vars: Vec<String>,
    range_depth: usize,
    nesting: usize,
    action_line: usize,
    last_line: usize,
    trees: Trees,
}

impl Parser<'_> {
    fn next(&mut self) -> Token {
        let t = self
            .toks
            .get(self.idx)
            .or_else(|| self.toks.last())
            .cloned()
            .unwrap_or(Token {
                kind: Kind::Eof,
                val: String::new(),
                line: self.last_line,
            });
        self.idx += 1;
        self.last_line = t.line;
        t
    }

    fn backup(&mut self) {
        self.idx = self.idx.saturating_sub(1);
    }

    fn peek(&mut self) -> Token {
        let t = self.next();
        self.backup();
        t
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.kind != Kind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf<T>(&self, reason: impl Into<String>) -> PResult<T> {
        Err(TemplateError {
            name: self.name.to_string(),
            line: self.last_line,
            reason: reason.into(),
        })
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> PResult<T> {
        if t.kind == Kind::Error {
            let line = if self.action_line != 0 {
                self.action_line
            } else {
                t.line
            };
            return Err(TemplateError {
                name: self.name.to_string(),
                line,
                reason: t.val.clone(),
            });
        }
        self.errorf(format!("unexpected {t} in {context}"))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> PResult<Token> {
        let t = self.next_non_space();
        if t.kind != kind {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn enter(&mut self) -> PResult<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return self.errorf(format!("template nesting exceeds {MAX_NESTING} levels"));
        }
        Ok(())
    }

    fn add_tree(&mut self, name: String, body: Vec<Node>) -> PResult<()> {
        match self.trees.get(&name) {
            Some(old) if !is_empty_tree(old) => {
                if !is_empty_tree(&body) {
                    return self.errorf(format!(
                        "template: multiple definition of template {}",
                        go_quote(&name)
                    ));
                }
            }
            _ => {
                self.trees.insert(name, body);
            }
        }
        Ok(())
    }

    fn parse_top(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        loop {
            let t = self.peek();
            if t.kind == Kind::Eof {
                return Ok(root);
            }
            if t.kind == Kind::LeftDelim {
                let save = self.idx;
                self.next();
                if self.next_non_space().kind == Kind::Define {
                    self.action_line = t.line;
                    self.parse_definition()?;
                    self.action_line = 0;
                    continue;
                }
                self.idx = save;
            }
            match self.text_or_action()? {
                Item::End => return self.errorf("unexpected {{end}}"),
                Item::Else => return self.errorf("unexpected {{else}}"),
                Item::Node(n) => root.push(n),
            }
        }
    }

    /// The body of a `define` or `block`: its own variables and range depth.
    fn sub_tree(&mut self, context: &str) -> PResult<Vec<Node>> {
        self.enter()?;
        let vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let range_depth = std::mem::replace(&mut self.range_depth, 0);
        let (body, end) = self.item_list()?;
        if end != ListEnd::End {
            return self.errorf(format!("unexpected {{{{else}}}} in {context}"));
        }
        self.vars = vars;
        self.range_depth = range_depth;
        self.nesting -= 1;
        Ok(body)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        const CONTEXT: &str = "define clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, CONTEXT)?;
        self.expect(Kind::RightDelim, CONTEXT)?;
        let body = self.sub_tree(CONTEXT)?;
        self.add_tree(name, body)
    }

    fn template_name(&self, t: &Token, context: &str) -> PResult<String> {
        match t.kind {
            Kind::String | Kind::RawString => match unquote(&t.val) {
                Ok(s) => Ok(s),
                Err(e) => self.errorf(e),
            },
            _ => self.unexpected(t, context),
        }
    }

    fn text_or_action(&mut self) -> PResult<Item> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Text => Ok(Item::Node(Node::Text(t.val))),
            Kind::LeftDelim => {
                let saved = self.action_line;
                self.action_line = t.line;
                let r = self.action();
                self.action_line = saved;
                r
            }
            _ => self.unexpected(&t, "input"),
        }
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, ListEnd)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Item::End => return Ok((list, ListEnd::End)),
                Item::Else => return Ok((list, ListEnd::Else)),
                Item::Node(n) => list.push(n),
            }
        }
        self.errorf("unexpected EOF")
    }

    fn action(&mut self) -> PResult<Item> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Block => self.block_control().map(Item::Node),
            Kind::Break | Kind::Continue => {
                let word = if t.kind == Kind::Break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let close = self.next_non_space();
                if close.kind != Kind::RightDelim {
                    return self.unexpected(&close, word);
                }
                if self.range_depth == 0 {
                    return self.errorf(format!("{word} outside {{{{range}}}}"));
                }
                Ok(Item::Node(if t.kind == Kind::Break {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Kind::Else => {
                let p = self.peek_non_space();
                if p.kind != Kind::If && p.kind != Kind::With {
                    self.expect(Kind::RightDelim, "else")?;
                }
                Ok(Item::Else)
            }
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                Ok(Item::End)
            }
            Kind::If => Ok(Item::Node(Node::If(self.control("if")?))),
            Kind::Range => Ok(Item::Node(Node::Range(self.control("range")?))),
            Kind::With => Ok(Item::Node(Node::With(self.control("with")?))),
            Kind::Template => self.template_control().map(Item::Node),
            _ => {
                self.backup();
                Ok(Item::Node(Node::Action(
                    self.pipeline("command", Kind::RightDelim)?,
                )))
            }
        }
    }

    fn control(&mut self, context: &str) -> PResult<Branch> {
        self.enter()?;
        let saved_vars = self.vars.len();
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        let is_range = context == "range";
        if is_range {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if is_range {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        if next == ListEnd::Else {
            let peek = self.peek().kind;
            if context == "if" && peek == Kind::If {
                self.next();
                else_list = Some(vec![Node::If(self.control("if")?)]);
            } else if context == "with" && peek == Kind::With {
                self.next();
                else_list = Some(vec![Node::With(self.control("with")?)]);
            } else {
                let (l, end) = self.item_list()?;
                if end != ListEnd::End {
                    return self.errorf("expected end; found {{else}}");
                }
                else_list = Some(l);
            }
        }
        self.vars.truncate(saved_vars);
        self.nesting -= 1;
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn template_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "template clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, CONTEXT)?;
        let pipe = if self.next_non_space().kind != Kind::RightDelim {
            self.backup();
            Some(self.pipeline(CONTEXT, Kind::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template(TemplateCall {
            line: t.line,
            name,
            pipe,
        }))
    }

    fn block_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "block clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, Kind::RightDelim)?;
        let body = self.sub_tree(CONTEXT)?;
        self.add_tree(name.clone(), body)?;
        Ok(Node::Template(TemplateCall {
            line: t.line,
            name,
            pipe: Some(pipe),
        }))
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        let first = self.peek_non_space();
        let mut pipe = Pipe {
            line: first.line,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            let var_idx = self.idx;
            self.next();
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                }
                Kind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                            _ => return self.errorf("range can only initialize variables"),
                        }
                    }
                    return self.errorf(format!("too many declarations in {context}"));
                }
                _ => self.idx = var_idx,
            }
            break;
        }
        loop {
            let t = self.next_non_space();
            match t.kind {
                k if k == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::CharConstant
                | Kind::Complex
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if let Some(first) = c.args.first() {
                if matches!(
                    first.op,
                    Op::Bool(_) | Op::Dot | Op::Nil | Op::Number(_) | Op::Str { .. }
                ) {
                    return self.errorf(format!(
                        "non executable command in pipeline stage {}",
                        i + 1
                    ));
                }
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let line = self.peek_non_space().line;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.errorf("empty command");
        }
        Ok(Command { line, args })
    }

    fn operand(&mut self) -> PResult<Option<Operand>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            let f = self.next();
            fields.extend(f.val.split('.').filter(|s| !s.is_empty()).map(String::from));
        }
        let line = node.line;
        let op = match node.op {
            Op::Field(mut idents) => {
                idents.extend(fields);
                Op::Field(idents)
            }
            Op::Variable(name, mut idents) => {
                idents.extend(fields);
                Op::Variable(name, idents)
            }
            Op::Bool(_) | Op::Str { .. } | Op::Number(_) | Op::Nil | Op::Dot => {
                return self.errorf(format!(
                    "unexpected . after term {}",
                    go_quote(&node.to_string())
                ));
            }
            op => Op::Chain(Box::new(Operand { line, op }), fields),
        };
        Ok(Some(Operand { line, op }))
    }

    fn term(&mut self) -> PResult<Option<Operand>> {
        let t = self.next_non_space();
        let line = t.line;
        let op = match t.kind {
            Kind::Identifier => {
                if !funcs::is_defined(&t.val) {
                    return self.errorf(format!("function {} not defined", go_quote(&t.val)));
                }
                Op::Func(t.val)
            }
            Kind::Dot => Op::Dot,
            Kind::Nil => Op::Nil,
            Kind::Variable => {
                if !self.vars.contains(&t.val) {
                    return self.errorf(format!("undefined variable {}", go_quote(&t.val)));
                }
                Op::Variable(t.val, Vec::new())
            }
            Kind::Field => Op::Field(
                t.val
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            Kind::Bool => Op::Bool(t.val == "true"),
            Kind::CharConstant | Kind::Complex | Kind::Number => match new_number(&t.val, t.kind) {
                Ok(n) => Op::Number(Box::new(n)),
                Err(e) => return self.errorf(e),
            },
            Kind::LeftParen => {
                self.enter()?;
                let pipe = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                self.nesting -= 1;
                Op::Pipe(Box::new(pipe))
            }
            Kind::String | Kind::RawString => match unquote(&t.val) {
                Ok(text) => Op::Str {
                    quoted: t.val,
                    text,
                },
                Err(e) => return self.errorf(e),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(Operand { line, op }))
    }
}
