use domain::UserId;
use domain::user::Role;

/// The authenticated caller of a use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub role: Role,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role.is_admin()
    }

    /// Owners see their own objects; admins see everyone's.
    pub fn can_see(&self, owner: UserId) -> bool {
        self.is_admin() || self.user_id == owner
    }
}
