use memo::cached;

use std::rc::Rc;

#[cached]
fn f(x: u32) -> Rc<u32> {
    Rc::new(x)
}

fn main() {}
