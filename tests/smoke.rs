mod common;
use common::*;
use kiln::prelude::*;

#[test]
fn smoke() {
    let Some(gpu) = gpu() else { return };
    let data = random_vec(1, 6, -1.0, 1.0);
    let (g, c) = pair(&data, &[2, 3], &gpu);
    assert_tensors_close("exp", &g.exp().unwrap(), &c.exp().unwrap(), ELEMENTWISE);
    let gm = g.matmul(&g.t().unwrap()).unwrap();
    let cm = c.matmul(&c.t().unwrap()).unwrap();
    assert_tensors_close("mm", &gm, &cm, MATMUL);
    println!("{:?}", gpu.counters());
}
