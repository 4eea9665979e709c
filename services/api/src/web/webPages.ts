import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/**
 * The console (/console) and the portal (/portal): the pages @tally/web builds, served by the API
 * process itself. Public: the pages hold no data, every figure on them comes from /v1 with the
 * caller's own credential. Asset names carry a content hash, so they are cached for a year; the
 * two pages are not cached, so a new build shows at once. The pages load scripts and styles
 * from here alone (no inline code), which the API's strict Content-Security-Policy allows.
 */
const PAGES = ['console', 'portal'] as const;

export async function webPages(app: FastifyInstance, options: { readonly root: string }): Promise<void> {
  await app.register(fastifyStatic, {
    root: options.root,
    prefix: '/ui/',
    index: false,
    // The build's assets and its two pages (sent by the routes below), nothing else of the disk.
    allowedPath: (pathName) => {
      const file = pathName.replace(/^\//, '');
      return file.startsWith('assets/') || PAGES.some((page) => file === `${page}/index.html`);
    },
    immutable: true,
    maxAge: '365d',
  });
  for (const page of PAGES) {
    for (const url of [`/${page}`, `/${page}/`]) {
      app.get(url, { config: { scope: 'public' }, schema: { hide: true } }, (_request, reply) =>
        // cacheControl false, or send would replace no-cache with its own `public, max-age=0`.
        reply.header('cache-control', 'no-cache').sendFile(`${page}/index.html`, options.root, { cacheControl: false }),
      );
    }
  }
}
