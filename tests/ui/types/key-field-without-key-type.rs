use memo::cached;

struct User {
    id: u64,
}

#[cached(key = user.id)]
fn f(user: &User) -> u64 {
    user.id
}

fn main() {}
