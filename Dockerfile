# syntax=docker/dockerfile:1
# meshlet sidecar image: the TypeScript sources compiled to dist/, run on Node 24.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; the node@24 devDependency is not needed on a Node 24 image.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY --from=build /app/dist ./dist
COPY config ./config
USER node
# inbound, outbound, admin, metrics (read-only)
EXPOSE 15006 15001 15000 15090
ENTRYPOINT ["node", "bin/meshlet.js"]
CMD ["run", "--config", "config/meshlet.yaml"]
