//! The evaluator: a port of Go's `text/template/exec.go` (pipelines, field chains,
//! variables, `if`/`with`/`range`/`template`, typed function calls) under
//! consul-template's options (`missingkey=zero`, or `error`; nil data), with step,
//! nesting, and size budgets.

mod call;

use super::ast::{Branch, Command, Node, Number, Op, Operand, Pipe, TemplateCall};
use super::funcs::{show, Ty};
use super::gofmt::Printer;
use super::parse::Trees;
use super::strconv::go_quote;
use super::value::Value;
use super::{Host, Rendered, TemplateError, MAX_EXEC_DEPTH, MAX_OUTPUT, MAX_STEPS};

pub(crate) enum Flow {
    Break,
    Continue,
    Error(TemplateError),
}

type R<T> = Result<T, Flow>;

/// The node an error is reported at (Go's `state.at`).
#[derive(Clone, Copy)]
enum At<'t> {
    None,
    Pipe(&'t Pipe),
    Cmd(&'t Command),
    Operand(&'t Operand),
    Template(&'t TemplateCall),
}

pub(crate) struct Exec<'t, 'h> {
    file: &'t str,
    trees: &'t Trees,
    host: &'h mut dyn Host,
    error_on_missing_key: bool,
    out: String,
    /// Bytes held in enclosing output buffers (`executeTemplate` captures).
    out_base: usize,
    vars: Vec<(&'t str, Value)>,
    depth: usize,
    steps: u64,
    produced: usize,
    complete: bool,
    tmpl_name: &'t str,
    at: At<'t>,
}

pub(crate) fn execute(
    file: &str,
    trees: &Trees,
    host: &mut dyn Host,
    error_on_missing_key: bool,
    data: Option<Value>,
) -> Result<Rendered, TemplateError> {
    let data = data.unwrap_or(Value::Invalid);
    let mut e = Exec {
        file,
        trees,
        host,
        error_on_missing_key,
        out: String::new(),
        out_base: 0,
        vars: vec![("$", data.clone())],
        depth: 0,
        steps: 0,
        produced: 0,
        complete: true,
        tmpl_name: file,
        at: At::None,
    };
    let root = trees.get("").map(Vec::as_slice).unwrap_or(&[]);
    match e.walk(&data, root) {
        Ok(()) => Ok(Rendered {
            text: e.out,
            complete: e.complete,
        }),
        Err(Flow::Error(err)) => Err(err),
        Err(_) => Err(TemplateError {
            name: file.to_string(),
            line: 0,
            reason: "{{break}} or {{continue}} outside {{range}}".into(),
        }),
    }
}

fn truncate_context(s: String) -> String {
    if s.len() > 20 {
        let head: String = s.chars().take(20).collect();
        format!("{head}...")
    } else {
        s
    }
}

impl<'t> Exec<'t, '_> {
    fn fail<T>(&self, msg: impl std::fmt::Display) -> R<T> {
        let (line, ctx) = match self.at {
            At::None => (0, None),
            At::Pipe(p) => (p.line, Some(p.to_string())),
            At::Cmd(c) => (c.line, Some(c.to_string())),
            At::Operand(o) => (o.line, Some(o.to_string())),
            At::Template(t) => {
                let pipe = t.pipe.as_ref().map(|p| format!(" {p}")).unwrap_or_default();
                (
                    t.line,
                    Some(format!("{{{{template {}{pipe}}}}}", go_quote(&t.name))),
                )
            }
        };
        let name = go_quote(self.tmpl_name);
        let reason = match ctx {
            Some(c) => format!("executing {name} at <{}>: {msg}", truncate_context(c)),
            None => format!("executing {name}: {msg}"),
        };
        Err(Flow::Error(TemplateError {
            name: self.file.to_string(),
            line: line.max(1),
            reason,
        }))
    }

    fn tick(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return self.fail(format!("template execution exceeded {MAX_STEPS} steps"));
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> R<()> {
        if self.out_base + self.out.len() + s.len() > MAX_OUTPUT {
            return self.fail(format!("template output exceeds {MAX_OUTPUT} bytes"));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        self.depth += 1;
        let r = if self.depth > MAX_EXEC_DEPTH {
            self.fail(format!(
                "exceeded maximum template depth ({MAX_EXEC_DEPTH})"
            ))
        } else {
            f(self)
        };
        self.depth -= 1;
        r
    }

    fn walk(&mut self, dot: &Value, list: &'t [Node]) -> R<()> {
        for node in list {
            self.walk_node(dot, node)?;
        }
        Ok(())
    }

    fn walk_node(&mut self, dot: &Value, node: &'t Node) -> R<()> {
        self.tick()?;
        match node {
            Node::Text(t) => self.write(t),
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    let mut p = Printer::default();
                    p.print_template_value(&v);
                    self.write(&p.buf)?;
                }
                Ok(())
            }
            Node::If(b) => self.nested(|e| e.walk_if_or_with(false, dot, b)),
            Node::With(b) => self.nested(|e| e.walk_if_or_with(true, dot, b)),
            Node::Range(b) => self.nested(|e| e.walk_range(dot, b)),
            Node::Template(t) => self.nested(|e| e.walk_template(dot, t)),
            Node::Break => Err(Flow::Break),
            Node::Continue => Err(Flow::Continue),
        }
    }

    fn walk_if_or_with(&mut self, is_with: bool, dot: &Value, b: &'t Branch) -> R<()> {
        let mark = self.vars.len();
        let r = (|| {
            let val = self.eval_pipeline(dot, &b.pipe)?;
            if val.truth() {
                if is_with {
                    self.walk(&val, &b.list)
                } else {
                    self.walk(dot, &b.list)
                }
            } else if let Some(e) = &b.else_list {
                self.walk(dot, e)
            } else {
                Ok(())
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, b: &'t Branch) -> R<()> {
        let mark = self.vars.len();
        let r = self.range_inner(dot, b);
        self.vars.truncate(mark);
        match r {
            Err(Flow::Break) => Ok(()),
            other => other,
        }
    }

    fn range_inner(&mut self, dot: &Value, b: &'t Branch) -> R<()> {
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        match &val {
            Value::List(l) if !l.items.is_empty() => {
                for (i, item) in l.items.iter().enumerate() {
                    let index = Value::Int(i64::try_from(i).unwrap_or(i64::MAX));
                    self.one_iteration(b, mark, index, item.clone())?;
                }
                return Ok(());
            }
            Value::Map(m) if !m.entries.is_empty() => {
                for (k, item) in &m.entries {
                    self.one_iteration(b, mark, Value::str(k.as_str()), item.clone())?;
                }
                return Ok(());
            }
            Value::Int(_) | Value::Uint(_) => {
                if b.pipe.decl.len() > 1 {
                    return self.fail(format!(
                        "can't use {} to iterate over more than one variable",
                        show(&val)
                    ));
                }
                let n = match val {
                    Value::Int(i) => i,
                    Value::Uint(u) => i64::try_from(u).unwrap_or(i64::MAX),
                    _ => 0,
                };
                if n > 0 {
                    for i in 0..n {
                        self.one_iteration(b, mark, Value::Invalid, Value::Int(i))?;
                    }
                    return Ok(());
                }
            }
            Value::List(_) | Value::Map(_) | Value::Invalid => {}
            other => return self.fail(format!("range can't iterate over {}", show(other))),
        }
        if let Some(e) = &b.else_list {
            self.walk(dot, e)?;
        }
        Ok(())
    }

    fn one_iteration(&mut self, b: &'t Branch, mark: usize, index: Value, elem: Value) -> R<()> {
        self.tick()?;
        let decl = &b.pipe.decl;
        if let Some(first) = decl.first() {
            if b.pipe.is_assign {
                let v = if decl.len() > 1 {
                    index.clone()
                } else {
                    elem.clone()
                };
                self.set_var(first, v)?;
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if let Some(second) = decl.get(1) {
            if b.pipe.is_assign {
                self.set_var(second, elem.clone())?;
            } else {
                self.set_top_var(2, index);
            }
        }
        let r = self.walk(&elem, &b.list);
        self.vars.truncate(mark);
        match r {
            Err(Flow::Continue) => Ok(()),
            other => other,
        }
    }

    fn walk_template(&mut self, dot: &Value, t: &'t TemplateCall) -> R<()> {
        self.at = At::Template(t);
        let Some((name, tree)) = self.trees.get_key_value(&t.name) else {
            return self.fail(format!("template {} not defined", go_quote(&t.name)));
        };
        let new_dot = match &t.pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Invalid,
        };
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let saved_name = std::mem::replace(&mut self.tmpl_name, name);
        let r = self.walk(&new_dot, tree);
        self.vars = saved_vars;
        self.tmpl_name = saved_name;
        r
    }

    fn set_top_var(&mut self, n: usize, v: Value) {
        if let Some(i) = self.vars.len().checked_sub(n) {
            if let Some(slot) = self.vars.get_mut(i) {
                slot.1 = v;
            }
        }
    }

    fn set_var(&mut self, name: &str, v: Value) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => self.fail(format!("undefined variable: {name}")),
        }
    }

    fn var_value(&self, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.fail(format!("undefined variable: {name}")),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipe) -> R<Value> {
        self.at = At::Pipe(pipe);
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            value = Some(v.dig());
        }
        let v = value.unwrap_or(Value::Invalid);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, v.clone())?;
            } else {
                self.vars.push((name, v.clone()));
            }
        }
        Ok(v)
    }

    fn not_a_function(&self, args: &[Operand], fin: &Option<Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            let first = args.first().map(|a| a.to_string()).unwrap_or_default();
            return self.fail(format!("can't give argument to non-function {first}"));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Command, fin: Option<Value>) -> R<Value> {
        self.tick()?;
        let Some(first) = cmd.args.first() else {
            return self.fail("empty command");
        };
        let rest = cmd.args.get(1..).unwrap_or(&[]);
        match &first.op {
            Op::Field(idents) => return self.eval_field_node(dot, first, idents, &cmd.args, fin),
            Op::Chain(inner, fields) => {
                return self.eval_chain_node(dot, first, inner, fields, &cmd.args, fin)
            }
            Op::Func(name) => return self.eval_function(dot, first, name, At::Cmd(cmd), rest, fin),
            Op::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.nested(|e| e.eval_pipeline(dot, p));
            }
            Op::Variable(name, idents) => {
                return self.eval_variable_node(first, name, idents, &cmd.args, fin)
            }
            _ => {}
        }
        self.at = At::Operand(first);
        self.not_a_function(&cmd.args, &fin)?;
        match &first.op {
            Op::Bool(b) => Ok(Value::Bool(*b)),
            Op::Dot => Ok(dot.clone()),
            Op::Nil => self.fail("nil is not a command"),
            Op::Number(n) => self.ideal_constant(n),
            Op::Str { text, .. } => Ok(Value::str(text.as_str())),
            _ => self.fail(format!(
                "can't evaluate command {}",
                go_quote(&first.to_string())
            )),
        }
    }

    fn ideal_constant(&self, n: &Number) -> R<Value> {
        let t = &n.text;
        let hex_int =
            t.len() > 2 && (t.starts_with("0x") || t.starts_with("0X")) && !t.contains(['p', 'P']);
        if n.is_float && !hex_int && !t.starts_with('\'') && t.contains(['.', 'e', 'E', 'p', 'P']) {
            Ok(Value::Float(n.float))
        } else if n.is_int {
            Ok(Value::Int(n.int))
        } else if n.is_uint {
            self.fail(format!("{t} overflows int"))
        } else {
            Ok(Value::Invalid)
        }
    }

    fn eval_field_node(
        &mut self,
        dot: &Value,
        op: &'t Operand,
        idents: &'t [String],
        args: &'t [Operand],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = At::Operand(op);
        self.eval_field_chain(dot.clone(), idents, args, fin)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Value,
        op: &'t Operand,
        inner: &'t Operand,
        fields: &'t [String],
        args: &'t [Operand],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = At::Operand(op);
        if matches!(inner.op, Op::Nil) {
            return self.fail(format!("indirection through explicit nil in {op}"));
        }
        let receiver = self.eval_arg(dot, Ty::Untyped, inner)?;
        self.eval_field_chain(receiver, fields, args, fin)
    }

    fn eval_variable_node(
        &mut self,
        op: &'t Operand,
        name: &str,
        idents: &'t [String],
        args: &'t [Operand],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = At::Operand(op);
        let value = self.var_value(name)?;
        if idents.is_empty() {
            self.not_a_function(args, &fin)?;
            return Ok(value);
        }
        self.eval_field_chain(value, idents, args, fin)
    }

    fn eval_field_chain(
        &mut self,
        receiver: Value,
        idents: &'t [String],
        args: &'t [Operand],
        fin: Option<Value>,
    ) -> R<Value> {
        let Some((last, init)) = idents.split_last() else {
            return Ok(receiver);
        };
        let mut r = receiver;
        for id in init {
            r = self.eval_field(id, &[], None, r)?;
        }
        self.eval_field(last, args, fin, r)
    }

    fn eval_field(
        &mut self,
        name: &str,
        args: &[Operand],
        fin: Option<Value>,
        receiver: Value,
    ) -> R<Value> {
        let has_args = args.len() > 1 || fin.is_some();
        match receiver {
            Value::Invalid => {
                if self.error_on_missing_key {
                    return self.fail(format!("nil data; no entry for key {}", go_quote(name)));
                }
                Ok(Value::Invalid)
            }
            Value::Nil => self.fail(format!("nil pointer evaluating interface {{}}.{name}")),
            Value::Map(m) => {
                if has_args {
                    return self.fail(format!("{name} is not a method but has arguments"));
                }
                match m.entries.get(name) {
                    Some(v) => Ok(v.clone()),
                    None if self.error_on_missing_key => {
                        self.fail(format!("map has no entry for key {}", go_quote(name)))
                    }
                    None => Ok(m.zero_elem()),
                }
            }
            Value::Struct(t, Some(fields)) => match t.fields.iter().position(|f| *f == name) {
                Some(i) => {
                    if has_args {
                        return self.fail(format!(
                            "{name} has arguments but cannot be invoked as function"
                        ));
                    }
                    Ok(fields.get(i).cloned().unwrap_or(Value::Invalid))
                }
                None => self.fail(format!("can't evaluate field {name} in type *{}", t.name)),
            },
            Value::Struct(t, None) if t.fields.contains(&name) => {
                self.fail(format!("nil pointer evaluating *{}.{name}", t.name))
            }
            Value::Struct(t, None) => {
                self.fail(format!("can't evaluate field {name} in type *{}", t.name))
            }
            Value::Number(s) if matches!(name, "String" | "Int64" | "Float64") => {
                let got = args.len().saturating_sub(1) + usize::from(fin.is_some());
                if got != 0 {
                    return self.fail(format!("wrong number of args for {name}: want 0 got {got}"));
                }
                match name {
                    "String" => Ok(Value::Str(s)),
                    "Int64" => match s.parse::<i64>() {
                        Ok(i) => Ok(Value::Int(i)),
                        Err(_) => self.fail(format!(
                            "error calling Int64: strconv.ParseInt: parsing {}: invalid syntax",
                            super::consul::redacted(&s)
                        )),
                    },
                    _ => match s.parse::<f64>() {
                        Ok(f) => Ok(Value::Float(f)),
                        Err(_) => self.fail(format!(
                            "error calling Float64: strconv.ParseFloat: parsing {}: invalid syntax",
                            super::consul::redacted(&s)
                        )),
                    },
                }
            }
            other => self.fail(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }
}
