# syntax=docker/dockerfile:1
# One image for every process of Agent Runtime: the API (default), the
# dispatcher and the agent worker. docker-compose.yml picks the command.
# Debian slim, not Alpine: @livekit/rtc-node ships glibc prebuilt binaries.
ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: full install, compile TypeScript to dist/ ---
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Lockfile first so the install layer is reused until dependencies change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# --- runtime: production dependencies and the compiled output only ---
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# production refuses the development defaults of secrets (see common/config.ts);
# docker-compose.yml sets NODE_ENV=development for the local stack.
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The playground page's files are served as they are (not compiled): beside its compiled router.
COPY --from=build /app/api/playground/static ./dist/api/playground/static
USER node
EXPOSE 8080
CMD ["node", "dist/api/main.js"]
