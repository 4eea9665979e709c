import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Consumption } from './apiTypes';
import { addDecimal, formatCredits } from './format';

const COLOURS = ['#2f6fdf', '#d9480f', '#2b8a3e', '#9c36b5', '#e8590c', '#0b7285', '#5c940d', '#c2255c'];

/** The event names of a consumption answer, retained-by-hand last. */
function seriesNames(consumption: Consumption): Array<string | null> {
  const names = [...new Set(consumption.items.map((item) => item.event))];
  return names.sort((a, b) => (a === null ? 1 : b === null ? -1 : a.localeCompare(b)));
}

const label = (event: string | null) => event ?? 'retained by hand';

/**
 * Credits charged per bucket and event name, drawn with uPlot (a refunded charge stays drawn: the
 * table says what refunds gave back), with the same figures as a table
 * for screen readers and keyboard users. The credits are plotted as numbers: a chart needs pixel
 * positions, and nothing is computed from them; the table and the chart's legend show the API's
 * exact decimal strings (uPlot's own legend would round the numbers to three decimals).
 */
export function ConsumptionChart({ consumption, title }: { consumption: Consumption | undefined; title: string }) {
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = holder.current;
    if (element === null || consumption === undefined || consumption.items.length === 0) return;
    const names = seriesNames(consumption);
    const starts = [...new Set(consumption.items.map((item) => Date.parse(item.start) / 1000))].sort((a, b) => a - b);
    const index = new Map(starts.map((start, position) => [start, position]));
    // The API's strings per series and bucket: the legend shows these, the plot their numbers.
    const exact = names.map(() => starts.map(() => '0'));
    for (const item of consumption.items) {
      const column = exact[names.indexOf(item.event)];
      const position = index.get(Date.parse(item.start) / 1000);
      if (column !== undefined && position !== undefined) column[position] = item.credits;
    }
    const columns = exact.map((column) => column.map(Number));
    const width = () => Math.max(240, element.clientWidth);
    const plot = new uPlot(
      {
        width: width(),
        height: 220,
        series: [
          {},
          ...names.map((name, position) => ({
            label: label(name),
            stroke: COLOURS[position % COLOURS.length],
            width: 2,
            points: { show: true },
            value: (_plot: uPlot, _raw: number, _series: number, at: number | null) => (at === null ? '–' : formatCredits(exact[position]![at] ?? '0')),
          })),
        ],
        axes: [{}, { size: 60 }],
        // The whole period asked for, not just the buckets that have consumption.
        scales: { x: { time: true, range: [Date.parse(consumption.from) / 1000, Date.parse(consumption.to) / 1000] } },
      },
      [starts, ...columns],
      element,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [consumption]);

  const totals = new Map<string | null, { credits: string; refunded: string; entries: number }>();
  for (const item of consumption?.items ?? []) {
    const total = totals.get(item.event);
    totals.set(item.event, {
      credits: total === undefined ? item.credits : addDecimal(total.credits, item.credits),
      refunded: total === undefined ? item.refunded : addDecimal(total.refunded, item.refunded),
      entries: (total?.entries ?? 0) + item.entries,
    });
  }
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      {consumption === undefined ? (
        <p>Loading…</p>
      ) : consumption.items.length === 0 ? (
        <p>No consumption in this period.</p>
      ) : (
        <>
          <div ref={holder} class="chart-canvas" aria-hidden="true" />
          <table aria-label={`${title} by event`}>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Credits</th>
                <th scope="col">Entries</th>
                <th scope="col">Refunded</th>
              </tr>
            </thead>
            <tbody>
              {[...totals.entries()].map(([event, total]) => (
                <tr key={event ?? ''}>
                  <td>{label(event)}</td>
                  <td class="number">{formatCredits(total.credits)}</td>
                  <td class="number">{total.entries}</td>
                  <td class="number">{formatCredits(total.refunded)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </figure>
  );
}
