/*
 * jwt.c - `turnpolicy jwt issue|verify`: JSON Web Tokens with the keys of
 * the configuration file (jwt_key.<kid>), through the library's JWT code
 * (pinned algorithms, the file's audience, leeway and lifetime).  Verify
 * prints the claims as JSON on stdout (exit 0) or the reason on stderr
 * (exit 1); the token may be read from stdin ("-") and is never printed
 * on an error.  Offline: nothing here talks to a network.
 */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char usage_jwt[] =
    "usage: turnpolicy jwt issue [--kid K] --sub S [--realm R] [--ttl S] "
    "[--now UNIX]\n"
    "       turnpolicy jwt verify [--now UNIX] TOKEN|-\n"
    "Issue a token with a key from the configuration (jwt_key.<kid>), or\n"
    "verify one: exit 0 and the claims as JSON if valid, 1 with the reason\n"
    "if not.  TOKEN - reads the token from standard input.\n";

static void
print_json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

int
tp_cli_jwt(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kid", required_argument, NULL, 'k'},
        {"sub", required_argument, NULL, 's'},
        {"realm", required_argument, NULL, 'r'},
        {"ttl", required_argument, NULL, 't'},
        {"now", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    tp_jwt_issue_params ip;
    static char tokbuf[TP_JWT_MAX + 2];
    const char *sub_cmd, *token;
    int64_t now = tp_now(), ttl = 300;
    tp_jwt_keys *jk = NULL;
    tp_config *cfg = NULL;
    tp_jwt_claims cl;
    tp_error err;
    tp_status st;
    char *out = NULL;
    int c, rc = TP_CLI_EXIT_USAGE;

    if (argc < 2) {
        if (argc == 1 || argv[1] == NULL)
            return tp_cli_usage_error(usage_jwt, "jwt needs issue or verify");
    }
    sub_cmd = argv[1];
    if (strcmp(sub_cmd, "--help") == 0 || strcmp(sub_cmd, "-h") == 0) {
        fputs(usage_jwt, stdout);
        return 0;
    }
    if (strcmp(sub_cmd, "issue") != 0 && strcmp(sub_cmd, "verify") != 0)
        return tp_cli_usage_error(usage_jwt, "unknown jwt command %s",
                                  sub_cmd);
    memset(&ip, 0, sizeof(ip));
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "k:s:r:t:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            ip.kid = optarg;
            break;
        case 's':
            ip.sub = optarg;
            break;
        case 'r':
            ip.realm = optarg;
            break;
        case 't':
            if (tp_cli_parse_int64(optarg, 1, 86400 * 366, &ttl) != 0)
                return tp_cli_usage_error(usage_jwt, "bad --ttl %s", optarg);
            break;
        case 'n':
            if (tp_cli_parse_int64(optarg, 1, INT64_MAX / 4, &now) != 0)
                return tp_cli_usage_error(usage_jwt, "bad --now %s", optarg);
            break;
        case 'h':
            fputs(usage_jwt, stdout);
            return 0;
        default:
            return tp_cli_usage_error(usage_jwt, "bad option");
        }
    }
    if (tp_cli_load_config(&cfg) != 0)
        return TP_CLI_EXIT_USAGE;
    jk = tp_jwt_keys_from_config(cfg, &err);
    if (jk == NULL) {
        rc = tp_cli_fail("jwt keys", &err);
        goto out;
    }
    if (strcmp(sub_cmd, "issue") == 0) {
        if (ip.sub == NULL) {
            rc = tp_cli_usage_error(usage_jwt, "--sub is required");
            goto out;
        }
        ip.now = now;
        ip.ttl = (uint32_t)ttl;
        if (tp_jwt_issue(jk, &ip, &out, &err) != TP_OK) {
            rc = tp_cli_fail("jwt issue", &err);
            goto out;
        }
        printf("%s\n", out);
        rc = 0;
        goto out;
    }
    if (optind >= argc) {
        rc = tp_cli_usage_error(usage_jwt, "jwt verify needs a TOKEN (or -)");
        goto out;
    }
    if (tp_cli_read_stdin_arg(argv[optind], tokbuf, sizeof(tokbuf),
                              &token) != 0) {
        rc = tp_cli_usage_error(usage_jwt, "cannot read the token from stdin");
        goto out;
    }
    st = tp_jwt_verify(jk, token, strlen(token), now, &cl, &err);
    if (st != TP_OK) {
        fprintf(stderr, "invalid: %s: %s\n", tp_reason(st), err.message);
        rc = TP_CLI_EXIT_REFUSED;
        goto out;
    }
    printf("{\"sub\":");
    print_json_str(cl.sub);
    printf(",\"realm\":");
    print_json_str(cl.realm);
    printf(",\"kid\":");
    print_json_str(cl.kid);
    printf(",\"alg\":\"%s\",\"exp\":%" PRId64 ",\"nbf\":%" PRId64
           ",\"iat\":%" PRId64 "}\n",
           tp_jwt_alg_name(cl.alg), cl.exp, cl.nbf, cl.iat);
    rc = 0;
out:
    tp_free(out);
    tp_jwt_keys_free(jk);
    tp_config_free(cfg);
    return rc;
}
