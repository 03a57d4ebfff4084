use memo::cached;

#[cached]
fn greet(name: Option<&str>) -> String {
    format!("hello {}", name.unwrap_or("you"))
}

#[cached]
fn join(words: &[&str]) -> String {
    words.join(" ")
}

#[cached]
fn label(pair: (u32, &str)) -> String {
    format!("{}{}", pair.0, pair.1)
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Item(u32);

#[cached]
fn total(items: Vec<&Item>, scale: u32) -> u32 {
    items.iter().map(|item| item.0).sum::<u32>() * scale
}

// Naming the argument as the key keys it as it is, too.
#[cached(key = name)]
fn shout(name: Option<&str>, loud: bool) -> String {
    let name = name.unwrap_or("you");
    if loud { name.to_uppercase() } else { name.to_string() }
}

fn main() {}
