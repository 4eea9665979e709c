import { resolve } from 'node:path';
import { defineConfig } from 'vite';

/**
 * Two pages, one build: the console and the portal share the API client, the chart and the
 * styles. Served by the API process under /ui/ (assets) and at /console and /portal (pages).
 * Preact's JSX is compiled by esbuild, which Vite already runs: no other plugin is needed.
 */
export default defineConfig({
  root: __dirname,
  base: '/ui/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The API's Content-Security-Policy allows scripts and styles from the origin only, never
    // inline ones: Vite's small assets must stay files rather than data: or inline code.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    rollupOptions: {
      input: { console: resolve(__dirname, 'console/index.html'), portal: resolve(__dirname, 'portal/index.html') },
    },
  },
});
