import type { FastifyInstance } from "fastify";

export async function registerConsole(_app: FastifyInstance): Promise<void> {}
