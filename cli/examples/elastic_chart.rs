//! Draws the elastic-pool benchmark's time series (`infra/bench/elastic.py`
//! writes them) as an SVG: the load and the statement's lag above, its
//! tasks per stage and the pool's CFU below.
//!
//!     cargo run --release -p weir-cli --example elastic_chart -- in.csv out.svg
//!
//! The CSV has a header and the columns `t,load,lag,source,keyed,cfu`
//! (seconds, records/s, records, tasks, tasks, CFU).

use plotters::prelude::*;

struct Row {
    t: f64,
    load: f64,
    lag: f64,
    source: f64,
    keyed: f64,
    cfu: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(output)) = (args.get(1), args.get(2)) else {
        return Err("usage: elastic_chart IN.csv OUT.svg".into());
    };
    let text = std::fs::read_to_string(input)?;
    let mut rows = vec![];
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<f64> = line
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{input}:{}: {e}", i + 1))?;
        if f.len() != 6 {
            return Err(format!("{input}:{}: want 6 columns, got {}", i + 1, f.len()).into());
        }
        rows.push(Row {
            t: f[0],
            load: f[1],
            lag: f[2],
            source: f[3],
            keyed: f[4],
            cfu: f[5],
        });
    }
    if rows.is_empty() {
        return Err(format!("{input} has no rows").into());
    }
    let t_max = rows.last().map_or(1.0, |r| r.t).max(1.0);
    let root = SVGBackend::new(output, (1100, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, rest) = root.split_vertically(270);
    let (middle, bottom) = rest.split_vertically(265);

    let max = |f: &dyn Fn(&Row) -> f64| rows.iter().map(f).fold(1.0f64, f64::max) * 1.1;
    let mut load = ChartBuilder::on(&top)
        .caption("Load (records/s produced)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..max(&|r| r.load))?;
    load.configure_mesh().x_desc("seconds").draw()?;
    load.draw_series(LineSeries::new(rows.iter().map(|r| (r.t, r.load)), &BLUE))?;

    let mut lag = ChartBuilder::on(&middle)
        .caption("Lag (records behind)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..max(&|r| r.lag))?;
    lag.configure_mesh().x_desc("seconds").draw()?;
    lag.draw_series(LineSeries::new(rows.iter().map(|r| (r.t, r.lag)), &RED))?;

    let tasks_max = max(&|r| r.cfu.max(r.source).max(r.keyed)).ceil();
    let mut tasks = ChartBuilder::on(&bottom)
        .caption("Tasks per stage and the pool's CFU", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..tasks_max)?;
    tasks.configure_mesh().x_desc("seconds").draw()?;
    type Series = (&'static str, RGBColor, fn(&Row) -> f64);
    let series: [Series; 3] = [
        ("source stage tasks", GREEN, |r| r.source),
        ("keyed stage tasks", MAGENTA, |r| r.keyed),
        ("pool current_cfu", BLACK, |r| r.cfu),
    ];
    for (name, color, f) in series {
        tasks
            .draw_series(LineSeries::new(rows.iter().map(|r| (r.t, f(r))), &color))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    tasks
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    println!("wrote {output}");
    Ok(())
}
