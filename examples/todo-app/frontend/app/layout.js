import "./globals.css";

export const metadata = {
  title: "Todos",
  description: "The Helmdeck reference workload: Next.js frontend, FastAPI backend.",
};

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
