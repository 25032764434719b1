//! The parse tree, shaped like Go's `text/template/parse` nodes. `Display` renders a
//! node the way Go's `String()` does, for the `at <...>` part of execution errors.

use std::fmt;

#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    /// `{{ pipeline }}`: printed unless it declares variables.
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template(TemplateCall),
    Break,
    Continue,
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(crate) struct TemplateCall {
    pub line: usize,
    pub name: String,
    pub pipe: Option<Pipe>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub line: usize,
    /// `$x = ...` rather than `$x := ...`.
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub line: usize,
    pub args: Vec<Operand>,
}

#[derive(Debug)]
pub(crate) struct Operand {
    pub line: usize,
    pub op: Op,
}

#[derive(Debug)]
pub(crate) enum Op {
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B`: the variable name (with `$`) then the fields.
    Variable(String, Vec<String>),
    /// `(pipeline).A.B` (or another term followed by fields).
    Chain(Box<Operand>, Vec<String>),
    /// A function name.
    Func(String),
    Dot,
    Nil,
    Bool(bool),
    Number(Box<Number>),
    Str {
        quoted: String,
        text: String,
    },
    Pipe(Box<Pipe>),
}

/// A numeric constant with every interpretation Go's parser found for it.
#[derive(Debug)]
pub(crate) struct Number {
    pub text: String,
    pub is_int: bool,
    pub is_uint: bool,
    pub is_float: bool,
    pub int: i64,
    pub uint: u64,
    pub float: f64,
}

/// Go's `IsEmptyTree`: only whitespace text.
pub(crate) fn is_empty_tree(list: &[Node]) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Op::Field(idents) => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Op::Variable(name, idents) => {
                f.write_str(name)?;
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Op::Chain(node, fields) => {
                if let Op::Pipe(p) = &node.op {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Op::Func(name) => f.write_str(name),
            Op::Dot => f.write_str("."),
            Op::Nil => f.write_str("nil"),
            Op::Bool(b) => write!(f, "{b}"),
            Op::Number(n) => f.write_str(&n.text),
            Op::Str { quoted, .. } => f.write_str(quoted),
            Op::Pipe(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if let Op::Pipe(p) = &a.op {
                write!(f, "({p})")?;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}
