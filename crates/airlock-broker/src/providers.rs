//! The built-in provider catalog: where each provider's API key goes and how it is sent.
//!
//! A binding names a preset with `provider = "openai"` and may override any field. Hosts are
//! `https` on port 443, either exact (`api.openai.com`) or `*.suffix`, which matches exactly
//! one extra label (`*.supabase.co` matches `abc.supabase.co`, not `a.b.supabase.co`).
//! `format` is the header value with `{}` standing for the credential; `query` names a query
//! parameter that may carry it instead. `extra_headers` are static headers the broker adds
//! when it injects the credential, and `paths` (when non-empty) limits the credential to
//! those path prefixes. `airlock broker providers` prints this table.
//!
//! The table is pure data: no I/O, no lookups beyond [`find`].

/// A built-in preset: where a provider's API key goes and how it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// Lower-case id used in profiles: `"openai"`.
    pub name: &'static str,
    /// Display name: `"OpenAI"`.
    pub title: &'static str,
    /// The variable SDKs read: `"OPENAI_API_KEY"`.
    pub env: &'static str,
    /// Exact hosts or `*.suffix` (exactly one extra label); https, port 443.
    pub hosts: &'static [&'static str],
    /// Lower-case header carrying the key; empty when the key goes in the query.
    pub header: &'static str,
    /// Header value template; `{}` is the key: `"Bearer {}"`, `"{}"`, `"Basic {}"`.
    pub format: &'static str,
    /// Query parameter carrying the key; empty if none.
    pub query: &'static str,
    /// Static headers added when injecting, e.g. `("anthropic-version", "2023-06-01")`.
    pub extra_headers: &'static [(&'static str, &'static str)],
    /// Allowed path prefixes; empty = any path.
    pub paths: &'static [&'static str],
    /// One short line for `airlock broker providers`.
    pub note: &'static str,
    /// A signing kind (`aws_sigv4`) when requests are re-signed rather than given the key.
    pub signing: &'static str,
    /// The key travels in the URL path (`/bot<token>/…`).
    pub url_path: bool,
    /// A minting kind (`github_app`, `google_service_account`) when the credential is an
    /// access token minted from the stored material.
    pub mint: &'static str,
}

/// Header-only preset with no extra headers, path limits or note; the common case.
const fn preset(
    name: &'static str,
    title: &'static str,
    env: &'static str,
    hosts: &'static [&'static str],
    header: &'static str,
    format: &'static str,
) -> Provider {
    Provider {
        name,
        title,
        env,
        hosts,
        header,
        format,
        query: "",
        extra_headers: &[],
        paths: &[],
        note: "",
        signing: "",
        url_path: false,
        mint: "",
    }
}

/// Every built-in preset, sorted by name.
pub static PROVIDERS: &[Provider] = &[
    Provider {
        note: "personal access tokens",
        ..preset(
            "airtable",
            "Airtable",
            "AIRTABLE_API_KEY",
            &["api.airtable.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        extra_headers: &[("anthropic-version", "2023-06-01")],
        note: "Claude API",
        ..preset(
            "anthropic",
            "Anthropic",
            "ANTHROPIC_API_KEY",
            &["api.anthropic.com"],
            "x-api-key",
            "{}",
        )
    },
    Provider {
        note: "personal access tokens; API under /api/1.0",
        ..preset(
            "asana",
            "Asana",
            "ASANA_ACCESS_TOKEN",
            &["app.asana.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "speech-to-text; the bare key, no scheme",
        ..preset(
            "assemblyai",
            "AssemblyAI",
            "ASSEMBLYAI_API_KEY",
            &["api.assemblyai.com"],
            "authorization",
            "{}",
        )
    },
    Provider {
        signing: "aws_sigv4",
        note: "AWS APIs, re-signed (SigV4); regional endpoints (s3.<region>.amazonaws.com) go in `hosts`",
        ..preset(
            "aws",
            "Amazon Web Services",
            "AWS_ACCESS_KEY_ID",
            &["*.amazonaws.com", "*.s3.amazonaws.com"],
            "",
            "{}",
        )
    },
    Provider {
        note: "Azure OpenAI resource <name>.openai.azure.com; Entra ID tokens need header authorization",
        ..preset(
            "azure-openai",
            "Azure OpenAI",
            "AZURE_OPENAI_API_KEY",
            &["*.openai.azure.com"],
            "api-key",
            "{}",
        )
    },
    Provider {
        note: "Brave Search API",
        ..preset(
            "brave",
            "Brave Search",
            "BRAVE_API_KEY",
            &["api.search.brave.com"],
            "x-subscription-token",
            "{}",
        )
    },
    preset(
        "cerebras",
        "Cerebras",
        "CEREBRAS_API_KEY",
        &["api.cerebras.ai"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        note: "API tokens (not the legacy global API key)",
        ..preset(
            "cloudflare",
            "Cloudflare",
            "CLOUDFLARE_API_TOKEN",
            &["api.cloudflare.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "the Cohere SDKs read CO_API_KEY (LangChain: COHERE_API_KEY)",
        ..preset(
            "cohere",
            "Cohere",
            "CO_API_KEY",
            &["api.cohere.com", "api.cohere.ai"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "API key on every Datadog site; an application key needs a second binding (dd-application-key)",
        ..preset(
            "datadog",
            "Datadog",
            "DD_API_KEY",
            &[
                "api.datadoghq.com",
                "api.us3.datadoghq.com",
                "api.us5.datadoghq.com",
                "api.datadoghq.eu",
                "api.ap1.datadoghq.com",
                "api.ap2.datadoghq.com",
                "api.ddog-gov.com",
                "http-intake.logs.datadoghq.com",
                "http-intake.logs.datadoghq.eu",
            ],
            "dd-api-key",
            "{}",
        )
    },
    Provider {
        note: "speech-to-text and TTS; `Token` scheme",
        ..preset(
            "deepgram",
            "Deepgram",
            "DEEPGRAM_API_KEY",
            &["api.deepgram.com"],
            "authorization",
            "Token {}",
        )
    },
    preset(
        "deepseek",
        "DeepSeek",
        "DEEPSEEK_API_KEY",
        &["api.deepseek.com"],
        "authorization",
        "Bearer {}",
    ),
    preset(
        "digitalocean",
        "DigitalOcean",
        "DIGITALOCEAN_TOKEN",
        &["api.digitalocean.com"],
        "authorization",
        "Bearer {}",
    ),
    preset(
        "elevenlabs",
        "ElevenLabs",
        "ELEVENLABS_API_KEY",
        &["api.elevenlabs.io"],
        "xi-api-key",
        "{}",
    ),
    preset(
        "exa",
        "Exa",
        "EXA_API_KEY",
        &["api.exa.ai"],
        "x-api-key",
        "{}",
    ),
    Provider {
        note: "personal access tokens",
        ..preset(
            "figma",
            "Figma",
            "FIGMA_TOKEN",
            &["api.figma.com"],
            "x-figma-token",
            "{}",
        )
    },
    preset(
        "firecrawl",
        "Firecrawl",
        "FIRECRAWL_API_KEY",
        &["api.firecrawl.dev"],
        "authorization",
        "Bearer {}",
    ),
    preset(
        "fireworks",
        "Fireworks AI",
        "FIREWORKS_API_KEY",
        &["api.fireworks.ai"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        query: "key",
        note: "header x-goog-api-key or ?key=; some SDKs read GOOGLE_API_KEY",
        ..preset(
            "gemini",
            "Google Gemini",
            "GEMINI_API_KEY",
            &["generativelanguage.googleapis.com"],
            "x-goog-api-key",
            "{}",
        )
    },
    Provider {
        note: "REST API and uploads; classic or fine-grained token (GitHub also accepts `token <PAT>`)",
        ..preset(
            "github",
            "GitHub",
            "GITHUB_TOKEN",
            &["api.github.com", "uploads.github.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        mint: "github_app",
        note: "GitHub App: installation tokens minted from the app's key (app_id, installation_id, private_key)",
        ..preset(
            "github-app",
            "GitHub App",
            "GITHUB_TOKEN",
            &["api.github.com", "uploads.github.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "gitlab.com; for a self-managed instance override hosts",
        ..preset(
            "gitlab",
            "GitLab",
            "GITLAB_TOKEN",
            &["gitlab.com"],
            "private-token",
            "{}",
        )
    },
    Provider {
        mint: "google_service_account",
        note: "Google APIs with a service account key (service_account = the key file's JSON); scope cloud-platform",
        ..preset(
            "google-cloud",
            "Google Cloud APIs",
            "GOOGLE_ACCESS_TOKEN",
            &["*.googleapis.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "OpenAI-compatible API under /openai/v1",
        ..preset(
            "groq",
            "Groq",
            "GROQ_API_KEY",
            &["api.groq.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "Platform API; clients send Accept: application/vnd.heroku+json; version=3",
        ..preset(
            "heroku",
            "Heroku",
            "HEROKU_API_KEY",
            &["api.heroku.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "private app access tokens",
        ..preset(
            "hubspot",
            "HubSpot",
            "HUBSPOT_ACCESS_TOKEN",
            &["api.hubapi.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "Hub, Inference API and Inference Providers router",
        ..preset(
            "huggingface",
            "Hugging Face",
            "HF_TOKEN",
            &[
                "huggingface.co",
                "api-inference.huggingface.co",
                "router.huggingface.co",
            ],
            "authorization",
            "Bearer {}",
        )
    },
    preset(
        "intercom",
        "Intercom",
        "INTERCOM_ACCESS_TOKEN",
        &["api.intercom.io"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        note: "embeddings and rerankers",
        ..preset(
            "jina",
            "Jina AI",
            "JINA_API_KEY",
            &["api.jina.ai"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "personal API keys go without a Bearer prefix (OAuth tokens: override format)",
        ..preset(
            "linear",
            "Linear",
            "LINEAR_API_KEY",
            &["api.linear.app"],
            "authorization",
            "{}",
        )
    },
    preset(
        "mistral",
        "Mistral AI",
        "MISTRAL_API_KEY",
        &["api.mistral.ai"],
        "authorization",
        "Bearer {}",
    ),
    preset(
        "netlify",
        "Netlify",
        "NETLIFY_AUTH_TOKEN",
        &["api.netlify.com"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        extra_headers: &[("notion-version", "2022-06-28")],
        note: "internal integration secret",
        ..preset(
            "notion",
            "Notion",
            "NOTION_API_KEY",
            &["api.notion.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "OpenAI-compatible hosted models",
        ..preset(
            "nvidia",
            "NVIDIA NIM",
            "NVIDIA_API_KEY",
            &["integrate.api.nvidia.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "also the Realtime API (WebSocket)",
        ..preset(
            "openai",
            "OpenAI",
            "OPENAI_API_KEY",
            &["api.openai.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        paths: &["/api/"],
        note: "API under /api/v1",
        ..preset(
            "openrouter",
            "OpenRouter",
            "OPENROUTER_API_KEY",
            &["openrouter.ai"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "REST API keys; `Token token=` scheme",
        ..preset(
            "pagerduty",
            "PagerDuty",
            "PAGERDUTY_API_KEY",
            &["api.pagerduty.com"],
            "authorization",
            "Token token={}",
        )
    },
    preset(
        "perplexity",
        "Perplexity",
        "PERPLEXITY_API_KEY",
        &["api.perplexity.ai"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        note: "server token (account tokens use x-postmark-account-token)",
        ..preset(
            "postmark",
            "Postmark",
            "POSTMARK_SERVER_TOKEN",
            &["api.postmarkapp.com"],
            "x-postmark-server-token",
            "{}",
        )
    },
    preset(
        "replicate",
        "Replicate",
        "REPLICATE_API_TOKEN",
        &["api.replicate.com"],
        "authorization",
        "Bearer {}",
    ),
    preset(
        "resend",
        "Resend",
        "RESEND_API_KEY",
        &["api.resend.com"],
        "authorization",
        "Bearer {}",
    ),
    preset(
        "sendgrid",
        "SendGrid",
        "SENDGRID_API_KEY",
        &["api.sendgrid.com"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        paths: &["/api/"],
        note: "auth token for the web API (not the DSN); regional and <org>.sentry.io hosts",
        ..preset(
            "sentry",
            "Sentry",
            "SENTRY_AUTH_TOKEN",
            &["sentry.io", "*.sentry.io"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "Google search results API",
        ..preset(
            "serper",
            "Serper",
            "SERPER_API_KEY",
            &["google.serper.dev"],
            "x-api-key",
            "{}",
        )
    },
    Provider {
        paths: &["/api/"],
        note: "bot or user token for the Web API",
        ..preset(
            "slack",
            "Slack",
            "SLACK_BOT_TOKEN",
            &["slack.com"],
            "authorization",
            "Bearer {}",
        )
    },
    preset(
        "stability",
        "Stability AI",
        "STABILITY_API_KEY",
        &["api.stability.ai"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        note: "secret or restricted key",
        ..preset(
            "stripe",
            "Stripe",
            "STRIPE_API_KEY",
            &["api.stripe.com", "files.stripe.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "project <ref>.supabase.co; REST also wants authorization: Bearer (second binding)",
        ..preset(
            "supabase",
            "Supabase",
            "SUPABASE_SERVICE_ROLE_KEY",
            &["*.supabase.co"],
            "apikey",
            "{}",
        )
    },
    preset(
        "tavily",
        "Tavily",
        "TAVILY_API_KEY",
        &["api.tavily.com"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        url_path: true,
        note: "Bot API: the token is part of the path, https://api.telegram.org/bot<token>/getMe",
        ..preset(
            "telegram",
            "Telegram Bot API",
            "TELEGRAM_BOT_TOKEN",
            &["api.telegram.org"],
            "",
            "{}",
        )
    },
    preset(
        "together",
        "Together AI",
        "TOGETHER_API_KEY",
        &["api.together.xyz", "api.together.ai"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        note: "HTTP Basic: the client sends base64(ACCOUNT_SID:placeholder); the broker swaps the password",
        ..preset(
            "twilio",
            "Twilio",
            "TWILIO_AUTH_TOKEN",
            &["api.twilio.com", "*.twilio.com"],
            "authorization",
            "Basic {}",
        )
    },
    preset(
        "vercel",
        "Vercel",
        "VERCEL_TOKEN",
        &["api.vercel.com"],
        "authorization",
        "Bearer {}",
    ),
    Provider {
        note: "embeddings and rerankers",
        ..preset(
            "voyage",
            "Voyage AI",
            "VOYAGE_API_KEY",
            &["api.voyageai.com"],
            "authorization",
            "Bearer {}",
        )
    },
    Provider {
        note: "Grok API",
        ..preset(
            "xai",
            "xAI",
            "XAI_API_KEY",
            &["api.x.ai"],
            "authorization",
            "Bearer {}",
        )
    },

];

/// The preset called `name` (case-insensitive).
pub fn find(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
