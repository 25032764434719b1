//! The logical operations a request carries.

/// Vault's logical operations. POST/PUT arrive as `Update` and become `Create` when the
/// backend's existence check says the target does not exist yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
    List,
    Patch,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Patch => "patch",
        }
    }
}
