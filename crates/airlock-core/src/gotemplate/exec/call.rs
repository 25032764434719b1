//! Function calls: Go's typed argument evaluation (`evalCall`, `evalArg`,
//! `validateType`) and the functions that need the host or the template set.

use std::time::UNIX_EPOCH;

use super::super::ast::{Op, Operand};
use super::super::consul::call_consul;
use super::super::funcs::{self, arg_str, nil_list, Func, Ty, F};
use super::super::strconv::go_quote;
use super::super::timefmt;
use super::super::value::{secret_from_json, Elem, Value};
use super::super::MAX_PRODUCED;
use super::{At, Exec, Flow, R};

impl<'t> Exec<'t, '_> {
    pub(super) fn eval_function(
        &mut self,
        dot: &Value,
        op: &'t Operand,
        name: &str,
        node: At<'t>,
        args: &'t [Operand],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = At::Operand(op);
        let Some(func) = funcs::lookup(name) else {
            return self.fail(format!("{} is not a defined function", go_quote(name)));
        };
        self.eval_call(dot, func, name, node, args, fin)
    }

    fn eval_call(
        &mut self,
        dot: &Value,
        func: Func,
        name: &str,
        node: At<'t>,
        args: &'t [Operand],
        fin: Option<Value>,
    ) -> R<Value> {
        let num_in = args.len() + usize::from(fin.is_some());
        let fixed = func.fixed.len();
        match func.variadic {
            Some(_) if num_in < fixed => {
                return self.fail(format!(
                    "wrong number of args for {name}: want at least {fixed} got {}",
                    args.len()
                ))
            }
            None if num_in != fixed => {
                return self.fail(format!(
                    "wrong number of args for {name}: want {fixed} got {num_in}"
                ))
            }
            _ => {}
        }
        if matches!(func.f, F::And | F::Or) {
            let is_or = func.f == F::Or;
            let mut v = Value::Invalid;
            for a in args {
                v = self.eval_arg(dot, Ty::Value, a)?;
                if v.truth() == is_or {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = self.validate_type(f, Ty::Value)?;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            let ty = func
                .fixed
                .get(i)
                .copied()
                .or(func.variadic)
                .unwrap_or(Ty::Any);
            argv.push(self.eval_arg(dot, ty, a)?);
        }
        if let Some(f) = fin {
            let ty = match func.variadic {
                Some(v) if num_in > fixed => v,
                _ => func.fixed.get(num_in - 1).copied().unwrap_or(Ty::Any),
            };
            argv.push(self.validate_type(f, ty)?);
        }
        self.at = node;
        match self.invoke(func.f, name, argv) {
            Ok(v) => {
                if let Value::Str(s) = &v {
                    self.produced = self.produced.saturating_add(s.len());
                    if self.produced > MAX_PRODUCED {
                        return self.fail(format!(
                            "template functions produced more than {MAX_PRODUCED} bytes"
                        ));
                    }
                    self.steps += (s.len() / 4096) as u64;
                }
                Ok(v)
            }
            Err(msg) => self.fail(format!("error calling {name}: {msg}")),
        }
    }

    pub(super) fn eval_arg(&mut self, dot: &Value, ty: Ty, op: &'t Operand) -> R<Value> {
        self.at = At::Operand(op);
        let v = match &op.op {
            Op::Dot => dot.clone(),
            Op::Nil => {
                return match ty {
                    Ty::Any => Ok(Value::Nil),
                    Ty::Value | Ty::Untyped => Ok(Value::Invalid),
                    Ty::StrList => Ok(nil_list(Elem::Str)),
                    Ty::AnyList => Ok(nil_list(Elem::Any)),
                    Ty::Str | Ty::Int => {
                        self.fail(format!("cannot assign nil to {}", ty.go_name()))
                    }
                }
            }
            Op::Field(idents) => {
                self.eval_field_node(dot, op, idents, std::slice::from_ref(op), None)?
            }
            Op::Variable(name, idents) => self.eval_variable_node(op, name, idents, &[], None)?,
            Op::Pipe(p) => self.nested(|e| e.eval_pipeline(dot, p))?,
            Op::Func(name) => self.eval_function(dot, op, name, At::Operand(op), &[], None)?,
            Op::Chain(inner, fields) => self.eval_chain_node(dot, op, inner, fields, &[], None)?,
            Op::Bool(b) => match ty {
                Ty::Any | Ty::Value | Ty::Untyped => return Ok(Value::Bool(*b)),
                Ty::Str => return self.fail(format!("expected string; found {op}")),
                Ty::Int => return self.fail(format!("expected integer; found {op}")),
                _ => {
                    return self.fail(format!(
                        "can't handle {op} for arg of type {}",
                        ty.go_name()
                    ))
                }
            },
            Op::Number(n) => match ty {
                Ty::Any | Ty::Value | Ty::Untyped => return self.ideal_constant(n),
                Ty::Int if n.is_int => return Ok(Value::Int(n.int)),
                Ty::Int => return self.fail(format!("expected integer; found {op}")),
                Ty::Str => return self.fail(format!("expected string; found {op}")),
                _ => {
                    return self.fail(format!(
                        "can't handle {op} for arg of type {}",
                        ty.go_name()
                    ))
                }
            },
            Op::Str { text, .. } => match ty {
                Ty::Any | Ty::Value | Ty::Untyped | Ty::Str => {
                    return Ok(Value::str(text.as_str()))
                }
                Ty::Int => return self.fail(format!("expected integer; found {op}")),
                _ => {
                    return self.fail(format!(
                        "can't handle {op} for arg of type {}",
                        ty.go_name()
                    ))
                }
            },
        };
        self.validate_type(v, ty)
    }

    fn validate_type(&self, v: Value, ty: Ty) -> R<Value> {
        match (ty, v) {
            (Ty::Value | Ty::Untyped, v) => Ok(v),
            (Ty::Any, Value::Invalid) => Ok(Value::Nil),
            (Ty::Any, v) => Ok(v),
            (Ty::StrList, Value::Invalid) => Ok(nil_list(Elem::Str)),
            (Ty::AnyList, Value::Invalid) => Ok(nil_list(Elem::Any)),
            (_, Value::Invalid) => self.fail(format!("invalid value; expected {}", ty.go_name())),
            (Ty::Str, v @ Value::Str(_)) | (Ty::Int, v @ Value::Int(_)) => Ok(v),
            (Ty::StrList, Value::List(l)) if l.elem == Elem::Str => Ok(Value::List(l)),
            (Ty::AnyList, Value::List(l)) if l.elem == Elem::Any => Ok(Value::List(l)),
            (_, Value::Nil) => self.fail(format!(
                "wrong type for value; expected {}; got interface {{}}",
                ty.go_name()
            )),
            (_, v) => self.fail(format!(
                "wrong type for value; expected {}; got {}",
                ty.go_name(),
                v.type_name()
            )),
        }
    }

    /// Runs a function whose arguments have been evaluated and type-checked.
    fn invoke(&mut self, f: F, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let s = |i| arg_str(&args, i);
        match f {
            F::Secret => self.call_secret(&args),
            F::Env => Ok(Value::str(self.host.env(&s(0)))),
            F::MustEnv => {
                let v = self.host.env(&s(0));
                if v.is_empty() {
                    return Err(format!("required environment variable {} is empty", s(0)));
                }
                Ok(Value::str(v))
            }
            F::EnvOrDefault => {
                let v = self.host.env(&s(0));
                Ok(if v.is_empty() {
                    Value::Str(s(1))
                } else {
                    Value::str(v)
                })
            }
            F::File => {
                let path = s(0);
                if path.is_empty() {
                    return Ok(Value::str(""));
                }
                self.host.file(path.trim()).map(Value::str)
            }
            F::ExecuteTemplate => self.execute_template(&args),
            F::Timestamp => {
                let now = self.host.now();
                let (secs, nanos) = match now.duration_since(UNIX_EPOCH) {
                    Ok(d) => (
                        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        d.subsec_nanos(),
                    ),
                    Err(e) => (
                        -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
                        0,
                    ),
                };
                match args.len() {
                    0 => Ok(Value::str(timefmt::format(timefmt::RFC3339, secs, nanos))),
                    1 if &*s(0) == "unix" => Ok(Value::str(secs.to_string())),
                    1 => Ok(Value::str(timefmt::format(&s(0), secs, nanos))),
                    n => Err(format!(
                        "timestamp: wrong number of arguments, expected 0 or 1, but got {n}"
                    )),
                }
            }
            F::Unsupported => Err(format!(
                "{name} is not supported by Airlock's template engine"
            )),
            F::And
            | F::Or
            | F::Not
            | F::Len
            | F::Index
            | F::Slice
            | F::Print
            | F::Printf
            | F::Println => funcs::call_builtin(f, &args),
            F::Eq
            | F::Ne
            | F::Lt
            | F::Le
            | F::Gt
            | F::Ge
            | F::Html
            | F::Js
            | F::UrlQuery
            | F::Call => funcs::call_builtin(f, &args),
            _ => call_consul(f, &args),
        }
    }

    fn call_secret(&mut self, args: &[Value]) -> Result<Value, String> {
        let strs: Vec<&str> = args.iter().map(|a| a.string_kind().unwrap_or("")).collect();
        let Some((path, rest)) = strs.split_first() else {
            return Ok(Value::Nil);
        };
        let mut params: Vec<(String, String)> = Vec::new();
        for s in rest.iter().filter(|s| !s.is_empty()) {
            let Some((k, v)) = s.split_once('=') else {
                return Err(format!("not k=v pair {}", go_quote(s)));
            };
            let (k, v) = (k.trim(), v.trim());
            match params.iter_mut().find(|(pk, _)| pk == k) {
                Some(p) => p.1 = v.to_string(),
                None => params.push((k.to_string(), v.to_string())),
            }
        }
        match self.host.secret(path, &params) {
            Some(json) => {
                secret_from_json(&json).map_err(|e| format!("secret {}: {e}", go_quote(path)))
            }
            None => {
                self.complete = false;
                Ok(Value::Nil)
            }
        }
    }

    fn execute_template(&mut self, args: &[Value]) -> Result<Value, String> {
        let name = arg_str(args, 0);
        let dot = match args.len() {
            1 => Value::Invalid,
            2 => funcs::arg(args, 1).dig(),
            n => {
                return Err(format!(
                    "executeTemplate: wrong number of arguments, expected 1 or 2, but got {n}"
                ))
            }
        };
        let Some((key, tree)) = self.trees.get_key_value(&*name) else {
            return Err(format!(
                "template: no template {} associated with template \"\"",
                go_quote(&name)
            ));
        };
        let saved_out = std::mem::take(&mut self.out);
        self.out_base += saved_out.len();
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$", dot.clone())]);
        let saved_name = std::mem::replace(&mut self.tmpl_name, key);
        let saved_at = self.at;
        let r = self.nested(|e| e.walk(&dot, tree));
        self.vars = saved_vars;
        self.tmpl_name = saved_name;
        self.at = saved_at;
        self.out_base -= saved_out.len();
        let text = std::mem::replace(&mut self.out, saved_out);
        match r {
            Ok(()) => Ok(Value::str(text)),
            Err(Flow::Error(e)) => Err(format!("template: {e}")),
            Err(_) => Err("{{break}} or {{continue}} outside {{range}}".into()),
        }
    }
}
